"""The benchmark harness: data set loader, missingness, linear peer, resume, peers, report."""
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from mmtricks.bench import corrupt, load_dataset
from mmtricks.bench.datasets import list_entries
from mmtricks.bench.report import relative_improvement
from mmtricks.bench.results import read_results
from mmtricks.cli import main
from mmtricks.errors import ConfigError

from conftest import make_table

EMOJI = os.path.join(os.path.dirname(__file__), "..", "src", "mmtricks", "demo", "data", "emoji")


def _write_set(folder, name="syn", n_train=60, n_test=30, kinds=("numerical", "categorical", "text", "image"),
               problem_type="multiclass", manifest=True):
    """A data set folder (train/test parquet, relative image paths); returns its entry."""
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    df = make_table(path, n=n_train + n_test, kinds=kinds, problem_type=problem_type, relative=True)
    df.iloc[:n_train].to_parquet(os.path.join(path, "train.parquet"))
    df.iloc[n_train:].to_parquet(os.path.join(path, "test.parquet"))
    entry = {"name": name, "label": "y", "problem_type": problem_type,
             "metric": "r2" if problem_type == "regression" else "accuracy",
             "image_columns": ["img"] if "image" in kinds else [], "text_columns": ["txt"] if "text" in kinds else []}
    if manifest:
        with open(os.path.join(folder, "manifest.json"), "w") as fh:
            json.dump([{**entry, "path": name}], fh)
    else:
        with open(os.path.join(path, "dataset.json"), "w") as fh:
            json.dump(entry, fh)
    return entry


# ----------------------------------------------------------------------------- data sets
def test_loader_reads_manifest_and_dataset_json(tmp_path, monkeypatch):
    data = tmp_path / "data"
    _write_set(str(data))
    ds = load_dataset("syn", data_dir=str(data))
    assert (len(ds.train), len(ds.test), ds.label, ds.metric) == (60, 30, "y", "accuracy")
    assert ds.modalities == ["image", "text", "tabular"] and ds.modality_group == "image+text+tabular"
    assert ds.groups == {"tabular": ["num_a", "num_b", "cat_a"], "text": ["txt"], "image": ["img"]}
    assert os.path.isfile(os.path.join(ds.base_dir, ds.train["img"].iloc[0]))
    monkeypatch.setenv("MMTRICKS_DATA", str(data))
    assert load_dataset("syn").name == "syn"
    with pytest.raises(ConfigError, match="'syn'"):
        load_dataset("sin")

    emoji = load_dataset(EMOJI)  # a folder described by its own dataset.json
    assert emoji.name == "emoji" and emoji.label == "category" and emoji.image_columns == ["image"]
    assert emoji.text_columns == ["name", "keywords"] and "added_in" in emoji.tabular_columns

    folders = tmp_path / "folders"  # no manifest: each subfolder's dataset.json
    _write_set(str(folders), name="a", kinds=("numerical", "text"), manifest=False)
    _write_set(str(folders), name="b", kinds=("numerical",), problem_type="regression", manifest=False)
    assert [e["name"] for e in list_entries(str(folders))] == ["a", "b"]
    b = load_dataset("b", data_dir=str(folders))
    assert b.problem_type == "regression" and b.modalities == ["tabular"]


# ---------------------------------------------------------------------------- missingness
def test_corrupt_keeps_a_modality_per_row_and_hits_the_ratio():
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 5, n), "c": rng.choice(["x", "y"], n),
                       "t": ["some words here"] * n, "img": ["images/1.png"] * n, "y": rng.integers(0, 2, n)})
    groups = {"tabular": ["a", "b", "c"], "text": ["t"], "image": ["img"]}
    for ratio in (0.1, 0.5):
        out = corrupt(df, groups, ratio, seed=3)
        lost = pd.DataFrame({g: out[cols].isna().all(axis=1) for g, cols in groups.items()})
        partial = pd.DataFrame({g: out[cols].isna().any(axis=1) for g, cols in groups.items()})
        assert (lost == partial).all().all()  # a group goes missing as a whole
        assert not lost.all(axis=1).any()  # every row keeps one modality
        expected = ratio - ratio ** 3 / 3  # rows that lost all three get one group back
        assert abs(lost.to_numpy().mean() - expected) < 0.03
        assert out["y"].equals(df["y"]) and len(out) == n
        assert out.equals(corrupt(df, groups, ratio, seed=3))  # fixed seed
    assert corrupt(df, groups, 0.0, seed=3).equals(df)


# ---------------------------------------------------------------------------- linear peer
def test_linear_peer_scores_sensibly(tmp_path):
    from mmtricks.bench.linear import LinearPeer
    from mmtricks.bench.scoring import score_outputs

    kinds = ("numerical", "categorical", "text")
    for problem, metric, floor in (("multiclass", "accuracy", 0.9), ("binary", "roc_auc", 0.9),
                                   ("regression", "r2", 0.8)):
        df = make_table(str(tmp_path), n=120, kinds=kinds, problem_type=problem, seed=1)
        df.loc[::7, "txt"] = None  # missing text and numbers are fine
        df.loc[::5, "num_b"] = np.nan
        train, test = df.iloc[:80], df.iloc[80:]
        peer = LinearPeer("y", problem, ["txt"], ["num_a", "num_b", "cat_a"]).fit(train)
        got = score_outputs(test["y"], peer.outputs(test.drop(columns="y")), peer.classes, problem, metric)
        assert got["score"] > floor and got["n_scored"] == 40


def test_unknown_config_names_presets_and_peers(tmp_path, capsys):
    from mmtricks.bench.configs import check_configs

    with pytest.raises(ConfigError, match="Did you mean 'baseline'") as info:
        check_configs(["baseline", "baselin"])
    assert "baseline_plus" in str(info.value) and "linear" in str(info.value) and "autogluon_mm" in str(info.value)
    data = tmp_path / "data"
    _write_set(str(data), kinds=("numerical",))
    rc = main(["bench", "--configs", "linar", "--out", str(tmp_path / "out"), "--data-dir", str(data)])
    err = capsys.readouterr().err
    assert rc == 2 and "Did you mean 'linear'" in err and "tiny" in err and "Traceback" not in err


# --------------------------------------------------------------------------------- resume
def _bench(data, out, *extra):
    return main(["bench", "--data-dir", str(data), "--out", str(out), "--seeds", "0", "--threads", "1", *extra])


def test_resume_skips_done_runs_and_completes_a_partial_file(tmp_path, monkeypatch, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data))
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_PYTHON", str(tmp_path / "no-venv" / "python"))
    args = ["--configs", "tiny,linear,autogluon_tabular", "--set", "optim.max_epochs=1"]
    assert _bench(data, out, *args) == 0
    lines = read_results(str(out))
    assert [(r["config"], r["status"]) for r in lines] == [("tiny", "ok"), ("linear", "ok"),
                                                           ("autogluon_tabular", "skipped")]
    assert "virtualenv not found" in lines[2]["reason"]
    tiny, linear_score = lines[0], lines[1]["score"]
    assert tiny["score"] is not None and 0 <= tiny["score"] <= 1 and tiny["n_test"] == 30
    assert tiny["fit_seconds"] > 0 and tiny["rows_per_s"] > 0 and tiny["peak_rss_mb"] > 50
    assert tiny["overrides"]["optim.max_epochs"] == 1 and tiny["profile_settings"]["max_train_rows"] == 2000
    assert tiny["versions"]["mmtricks"] and tiny["modalities"] == ["image", "text", "tabular"]
    log = (out / "progress.log").read_text()
    assert log.count(" start ") == 3 and log.count(" end ") == 3

    assert _bench(data, out, *args) == 0  # same arguments: nothing left to do
    assert len(read_results(str(out))) == 3
    assert "0 of 3 fits to run" in capsys.readouterr().out

    # A partial file (linear missing, a half-written last line) gets completed.
    text = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join([text[0], text[2], text[1][:40]]))
    assert _bench(data, out, *args) == 0
    lines = read_results(str(out))
    assert [r["config"] for r in lines] == ["tiny", "autogluon_tabular", "linear"]
    assert lines[2]["score"] == pytest.approx(linear_score)  # the same rows again
    assert _bench(data, out, *args, "--retry-skipped") == 0  # skipped runs only come back on request
    assert [r["config"] for r in read_results(str(out))][-1] == "autogluon_tabular"


FAKE_PEER = (  # a stand-in for bench/peers/autogluon_run.py: right for even test rows, wrong for odd ones
    "import json, os, sys\n"
    "import pandas as pd\n"
    "req = json.load(open(sys.argv[2]))\n"
    "keys = ['kind', 'train_path', 'test_path', 'base_dir', 'label', 'problem_type', 'metric', 'time_limit',\n"
    "        'seed', 'text_backbone', 'image_backbone', 'max_train_rows', 'text_max_length', 'out_dir']\n"
    "assert all(k in req for k in keys), req\n"
    "y = list(pd.read_parquet(req['test_path'])[req['label']])\n"
    "classes = ['a', 'b', 'c']\n"
    "guess = [v if i % 2 == 0 else classes[(classes.index(v) + 1) % 3] for i, v in enumerate(y)]\n"
    "os.makedirs(req['out_dir'], exist_ok=True)\n"
    "path = os.path.join(req['out_dir'], 'predictions.parquet')\n"
    "pd.DataFrame([[float(g == c) for c in classes] for g in guess], columns=classes).to_parquet(path)\n"
    "print('some log line')\n"
    "print(json.dumps({'status': 'ok', 'metric': req['metric'], 'predictions': path, 'classes': classes,\n"
    "                  'n_test': len(y), 'fit_seconds': 1.0, 'predict_seconds': 0.5, 'rows_per_s': 60.0,\n"
    "                  'peak_rss_mb': 10.0, 'versions': {'autogluon': 'fake'}, 'kind': req['kind'],\n"
    "                  'request': os.path.abspath(sys.argv[2])}))\n")


def test_peer_script_contract_and_missingness_grid(tmp_path, monkeypatch):
    """The peer writes predictions, the harness scores them; the missingness grid fits once per train ratio."""
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical", "categorical", "text"))
    fake = tmp_path / "fake_peer.py"
    fake.write_text(FAKE_PEER)
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_PYTHON", sys.executable)
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_SCRIPT", str(fake))
    rc = _bench(data, out, "--configs", "linear,autogluon_mm", "--missing-train", "0,0.5", "--missing-test",
                "0,0.5", "--time-limit", "30", "--report")
    assert rc == 0
    lines = read_results(str(out))
    cells = {(r["config"], r["missing_train"], r["missing_test"]) for r in lines}
    assert cells == {(c, a, b) for c in ("linear", "autogluon_mm") for a in (0.0, 0.5) for b in (0.0, 0.5)}
    assert all(r["status"] == "ok" for r in lines)
    peer = [r for r in lines if r["config"] == "autogluon_mm"][0]
    assert peer["score"] == 0.5 and peer["versions"]["autogluon"] == "fake" and peer["time_over_limit"] > 0
    assert (peer["n_scored"], peer["n_unseen_label"], peer["n_test"]) == (30, 0, 30)
    assert peer["peer_output"]["kind"] == "multimodal" and "classes" not in peer["peer_output"]
    assert peer["peer_output"]["predictions"].endswith("predictions.parquet")
    runs = out / "scratch" / "quick" / "syn" / "seed0" / "runs"
    assert sorted(os.listdir(runs)) == ["autogluon_mm_m0", "autogluon_mm_m0.5", "linear_m0", "linear_m0.5"]
    request = json.loads((runs / "linear_m0.5" / "request.json").read_text())
    assert [t["missing_test"] for t in request["tests"]] == [0.0, 0.5]  # one fit, scored at each test ratio
    train = pd.read_parquet(request["train_path"])
    assert train["txt"].isna().mean() > 0.2  # the corrupted train file every config sees
    report = (out / "report.md").read_text()
    assert "## Missing modalities" in report and "test 0.5" in report and "train 0.5" in report
    assert (out / "plots" / "missingness.png").is_file()


def test_peer_output_is_scored_by_the_harness(tmp_path):
    """parse_output scores the peer's predictions file with score_outputs; error lines stay errors."""
    from mmtricks.bench.autogluon import parse_output
    from mmtricks.bench.scoring import score_outputs

    def peer_run(name, labels, frame, problem_type, metric, **line):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame({"y": labels, "x": range(len(labels))}).to_parquet(folder / "test.parquet")
        frame.to_parquet(folder / "predictions.parquet")
        request = {"test_path": str(folder / "test.parquet"), "label": "y", "problem_type": problem_type,
                   "metric": metric, "out_dir": str(folder)}
        (folder / "request.json").write_text(json.dumps(request))
        line = {"status": "ok", "predictions": str(folder / "predictions.parquet"),
                "request": str(folder / "request.json"), "fit_seconds": 2.0, **line}
        return "AutoGluon log {not json}\n" + json.dumps(line) + '\n{"progress": 1}\n'

    # Multiclass: a missing label is dropped, an unseen one ("d") counted; same numbers as score_outputs.
    labels = ["a", "b", "c", "d", None, "a"]
    proba = np.array([[.8, .1, .1], [.2, .7, .1], [.6, .2, .2], [.3, .3, .4], [.1, .1, .8], [.2, .5, .3]])
    out = parse_output(peer_run("mc", labels, pd.DataFrame(proba, columns=["a", "b", "c"]), "multiclass",
                                "accuracy", classes=["a", "b", "c"]))
    assert out["status"] == "ok" and (out["score"], out["n_scored"], out["n_unseen_label"]) == (0.5, 4, 1)
    assert out["fit_seconds"] == 2.0 and "classes" not in out and out["epochs"] is None
    # Two validations per epoch: five validation lines are 2.5 epochs (other lines do not count).
    validations = "".join(f"Epoch {i // 2}, global step {i}: 'val_accuracy' was not in top 3\n" for i in range(5))
    out = parse_output(validations + "Epoch 3/19 ━━━━ 10/13\n" + peer_run("ep", labels, pd.DataFrame(
        proba, columns=["a", "b", "c"]), "multiclass", "accuracy", classes=["a", "b", "c"]))
    assert out["epochs"] == 2.5
    # Binary roc_auc with integer classes (column names "0", "1"; float labels in the test file).
    p1 = np.array([.1, .9, .4, .8, .3])
    out = parse_output(peer_run("bin", [0.0, 1.0, 0.0, 1.0, 1.0], pd.DataFrame({"0": 1 - p1, "1": p1}), "binary",
                                "roc_auc", classes=[0, 1]))
    want = score_outputs(pd.Series([0, 1, 0, 1, 1]), np.c_[1 - p1, p1], [0, 1], "binary", "roc_auc")
    assert out["score"] == pytest.approx(want["score"]) and out["n_scored"] == 5
    # Regression: the "prediction" column.
    out = parse_output(peer_run("reg", [1.0, 2.0, 3.0], pd.DataFrame({"prediction": [1.0, 2.0, 5.0]}),
                                "regression", "rmse", classes=[]))
    assert out["score"] == pytest.approx(np.sqrt(4 / 3)) and out["n_unseen_label"] == 0

    # Columns that do not match the classes, and a line without a predictions file: errors, not crashes.
    out = parse_output(peer_run("bad", ["a", "b"], pd.DataFrame({"a": [1.0, 0.0], "x": [0.0, 1.0]}), "multiclass",
                                "accuracy", classes=["a", "b"]))
    assert out["status"] == "error" and out["score"] is None and "do not match" in out["error"]
    out = parse_output(json.dumps({"status": "ok", "fit_seconds": 1.0}))
    assert out["status"] == "error" and "no 'request'" in out["error"]
    # The peer's own error line comes back with its text; no status line at all gives None.
    out = parse_output('log\n{"status": "error", "error": "ValueError: request lacks [\'label\']"}\n')
    assert out["score"] is None and out["error"] == "ValueError: request lacks ['label']"
    assert parse_output('log\n{"progress": 1}\n') is None


def test_peer_error_line_is_recorded_as_failed(tmp_path, monkeypatch):
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical",))
    fake = tmp_path / "failing_peer.py"
    fake.write_text("import json, sys\nprint('Traceback: ...', file=sys.stderr)\n"
                    "print(json.dumps({'status': 'error', 'error': 'FileNotFoundError: no timm folder'}))\n"
                    "sys.exit(1)\n")
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_PYTHON", sys.executable)
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_SCRIPT", str(fake))
    assert _bench(data, out, "--configs", "autogluon_tabular") == 1  # a failed run: exit code 1
    [line] = read_results(str(out))
    assert line["status"] == "failed" and line["score"] is None
    assert "FileNotFoundError: no timm folder" in line["reason"]


# --------------------------------------------------------------------------------- report
def _line(ds, config, seed, score, group, metric="accuracy", higher=True, **extra):
    return {"status": "ok", "dataset": ds, "config": config, "seed": seed, "score": score, "metric": metric,
            "greater_is_better": higher, "modality_group": group, "modalities": group.split("+"),
            "config_kind": "peer" if config == "linear" else "preset", "missing_train": 0.0, "missing_test": 0.0,
            "profile": "quick", "profile_settings": {"description": "test", "max_train_rows": 2000},
            "time_limit": 90.0, "overrides": {}, "problem_type": "multiclass", "fit_seconds": 45.0,
            "predict_seconds": 1.0, "rows_per_s": 100.0, "peak_rss_mb": 900.0, "time_over_limit": 0.5,
            "n_train": 100, "n_test": 50, "versions": {"mmtricks": "0.1.0"}, **extra}


def _report(tmp_path, lines):
    """Write ``lines`` as a bench's results.jsonl, run ``mmtricks bench report``; (folder, report text)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["bench", "report", str(out)]) == 0
    return out, (out / "report.md").read_text()


def test_report_speed_ratios_against_autogluon_mm(tmp_path):
    """Per data set: median over seeds of s/epoch (peer / preset), rows/s (preset / peer), overrun ratio."""
    lines = []
    for seed, (mine_epochs, peer_epochs) in enumerate([(4.0, 2.0), (5.0, 1.0), (2.0, 2.0)]):
        lines += [_line("a", "baseline_plus", seed, 0.8, "image+text", fit_seconds=40.0, rows_per_s=100.0,
                        time_over_limit=0.5, fit_info={"epochs": mine_epochs}),
                  {**_line("a", "autogluon_mm", seed, 0.7, "image+text", fit_seconds=60.0, rows_per_s=50.0,
                           time_over_limit=1.2, peer_output={"epochs": peer_epochs}), "config_kind": "peer"}]
    out, report = _report(tmp_path, lines)
    # s/epoch ratios per seed: (60/2)/(40/4)=3, (60/1)/(40/5)=7.5, (60/2)/(40/2)=1.5 -> median 3.
    assert "## Speed against autogluon_mm" in report
    assert "| baseline_plus | a | 3.00x | 2.00x | 2.40x | 3 / 3 |" in report

    # The same tables spliced into a hand-written document between its markers; the rest is kept.
    doc = tmp_path / "docs" / "bench.md"
    doc.parent.mkdir()
    marker = f"<!-- bench-report {out} -->"
    doc.write_text(f"# Mine\n\nreading A\n\n{marker}\nold table\n<!-- /bench-report {out} -->\n\nreading B\n")
    assert main(["bench", "report", str(out), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Mine\n\nreading A\n\n" + marker) and text.endswith("reading B\n")
    assert "old table" not in text and "#### Speed against autogluon_mm" in text and "## Settings" not in text
    assert "](../out/plots/scores.png)" in text and "| baseline_plus | a | 3.00x |" in text
    doc.write_text("# no markers\n")
    assert main(["bench", "report", str(out), "--doc", str(doc)]) == 2


def test_report_tables_and_plots(tmp_path, capsys):
    lines = []
    for seed in (0, 1):
        lines += [_line("a", "baseline", seed, 0.80, "image+text"), _line("a", "baseline_plus", seed, 0.88, "image+text"),
                  _line("a", "linear", seed, 0.60 + 0.1 * seed, "image+text"),
                  _line("b", "baseline", seed, 2.0, "text+tabular", metric="rmse", higher=False),
                  _line("b", "baseline_plus", seed, 1.5, "text+tabular", metric="rmse", higher=False),
                  _line("b", "linear", seed, 3.0, "text+tabular", metric="rmse", higher=False)]
    lines.append({**_line("a", "autogluon_mm", 0, None, "image+text"), "status": "skipped",
                  "reason": "AutoGluon virtualenv not found"})
    lines.append(_line("a", "baseline", 0, 0.7, "image+text", missing_train=0.3, missing_test=0.5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    rel = relative_improvement(pd.DataFrame([x for x in lines if x["status"] == "ok" and not x["missing_train"]]))
    assert rel.loc["baseline_plus", "image+text"] == pytest.approx(0.1)
    assert rel.loc["baseline_plus", "text+tabular"] == pytest.approx(0.25)  # rmse: lower is better, sign flipped
    assert rel.loc["linear", "text+tabular"] == pytest.approx(-0.5) and rel.loc["baseline", "all"] == 0

    assert main(["bench", "report", str(out)]) == 0
    report = (out / "report.md").read_text()
    for heading in ("## Settings", "## Data sets", "## Test scores", "## Relative improvement over baseline",
                    "## Peers and cost", "## Missing modalities", "## Skipped and failed runs"):
        assert heading in report
    assert "0.6500 ± 0.0707 (2)" in report and "+10.00%" in report and "+25.00%" in report
    assert "AutoGluon virtualenv not found" in report and "| linear | peer | 45.0 | 100.0 | 0.50" in report
    for png in ("scores.png", "relative.png", "cost.png", "missingness.png"):
        assert (out / "plots" / png).stat().st_size > 1000
    assert main(["bench", "report", str(tmp_path / "empty")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_missingness_summary_against_imputation_only(tmp_path):
    lines = []
    for seed in (0, 1):
        for mtrain in (0.1, 0.5):
            for mtest in (0.1, 0.5):
                lines += [_line("a", "baseline_plus", seed, 0.80, "image+text", missing_train=mtrain,
                                missing_test=mtest),
                          _line("a", "modality_dropout", seed, 0.88, "image+text", missing_train=mtrain,
                                missing_test=mtest),
                          _line("b", "baseline_plus", seed, 2.0, "text+tabular", metric="rmse", higher=False,
                                missing_train=mtrain, missing_test=mtest),
                          _line("b", "modality_dropout", seed, 2.0 + mtest, "text+tabular", metric="rmse",
                                higher=False, missing_train=mtrain, missing_test=mtest)]
    out, report = _report(tmp_path, lines)
    assert "| a (accuracy) | 0.8000 (2) | 0.8800 (2) |" in report
    # a: +10%; b: rmse 2.3 against 2.0 is 15% worse (sign flipped for lower-is-better).
    assert "| modality_dropout | -15.00% | +10.00% | -2.50% |" in report
