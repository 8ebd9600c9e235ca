"""The benchmark harness: data set loader, missingness, linear peer, resume, peers, report."""
import json
import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from mmtricks.bench import corrupt, load_dataset
from mmtricks.bench.datasets import list_entries
from mmtricks.bench.report import relative_improvement
from mmtricks.bench.results import read_results
from mmtricks.cli import main
from mmtricks.errors import ConfigError

from bench_helpers import EMOJI, SRC, _bench, _write_set
from conftest import make_table

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
    # The code that ran: this checkout's commit, and whether the package tree differs from it.
    head = subprocess.run(["git", "-C", SRC, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert tiny["commit"] == head.stdout.strip() and isinstance(tiny["commit_dirty"], bool)
    else:
        assert tiny["commit"] is None and tiny["commit_dirty"] is None
    # The fit's compact summary instead of its per-validation history.
    summary, info = tiny["fit_summary"], tiny["fit_info"]
    assert "history" not in info and "plan" not in info
    assert summary["steps"] == info["steps"] > 0 and summary["epochs"] == info["epochs"]
    assert summary["stopped"] == info["stopped"] and summary["n_validations"] >= 1
    assert isinstance(summary["last_lr"], float) and summary["last_lr"] >= 0  # cosine ends at 0
    assert summary["seconds_per_step"] == pytest.approx(info["train_seconds"] / info["steps"], rel=1e-3)
    assert "plan" in summary  # None until the predictor records its plan, then the plan dict
    assert set(tiny["contention"]) >= {"load_before", "load_after", "others_cores", "wall_seconds", "cpus"}
    assert tiny["contention"]["wall_seconds"] >= tiny["fit_seconds"] * 0.5
    assert lines[1]["fit_summary"] is None and lines[1]["commit"] == tiny["commit"]  # linear: no steps
    log = (out / "progress.log").read_text()
    assert log.count(" start ") == 3 and log.count(" end ") == 3
    # The constant predictor's score on the same rows, for the report's collapse check.
    constants = json.loads((out / "constants.json").read_text())
    assert list(constants) == ["quick|syn|0"] and constants["quick|syn|0"]["n_test"] == 30

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


# ------------------------------------------------------------------------ standard profile
def test_standard_profile_uses_default_input_sizes_and_shares_rows_with_peers(tmp_path, capsys, monkeypatch):
    from mmtricks.bench import host
    from mmtricks.bench.autogluon import build_request
    import mmtricks.bench.profiles as profiles
    from mmtricks.bench.profiles import get_profile

    std, quick = get_profile("standard"), get_profile("quick")
    # What a user gets: no input-size overrides, so the defaults choose them; bf16 autocast (the gated candidate).
    assert std.overrides == {"env.precision": "bf16-mixed"} and std.text_max_length is None and std.image_size is None
    assert std.max_train_rows == 4000 and std.time_limits == {"cloth": 400.0, "ptech": 560.0, "covid": 800.0}
    assert std.limit_for("covid") == 800 and std.limit_for("mine") == std.time_limit == 800
    assert "Sizing of ``standard``" in profiles.__doc__ and "measured" in profiles.__doc__
    # quick stays the smoke profile it was.
    assert quick.max_train_rows == 2000 and quick.time_limit == 90 and quick.overrides["data.image_size"] == 128

    data = tmp_path / "data"
    entry = _write_set(str(data), kinds=("numerical", "text"))
    ds = load_dataset("syn", data_dir=str(data))
    request = build_request("multimodal", "tr.parquet", "te.parquet", ds, std, std.limit_for("syn"), 0, "o")
    assert (request["max_train_rows"], request["time_limit"]) == (4000, 800)
    assert request["text_max_length"] is None and request["image_size"] is None  # AutoGluon's defaults too
    # The profile's bf16 needs a CPU with native bf16 (tests/test_bench_host.py): this test plans on one.
    monkeypatch.setattr(host, "machine_fingerprint", lambda: {"name": "cpu", "architecture": "x86_64",
                                                              "isa": ["avx512_bf16"], "native_bf16": True,
                                                              "gpu": None})
    rc = main(["bench", "--profile", "standard", "--data-dir", str(data), "--configs", "baseline,linear",
               "--seeds", "0,1", "--out", str(tmp_path / "out"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "4 of 4 fits to run (profile standard, time limit 800s" in out and entry["name"] in out

    # Per data set limits, the same for every config (peers included); --time-limit overrides them.
    from mmtricks.bench.runner import Bench, BenchSpec

    cloth_entry = _write_set(str(data), name="cloth", kinds=("numerical", "text"), problem_type="regression",
                             manifest=False)
    (data / "manifest.json").write_text(json.dumps([{**entry, "path": "syn"}, {**cloth_entry, "path": "cloth"}]))
    bench = Bench(BenchSpec(datasets=["syn", "cloth"], configs=["baseline", "autogluon_mm"], seeds=[0],
                            out_dir=str(tmp_path / "o2"), profile="standard", data_dir=str(data)))
    syn, cloth = bench.datasets
    assert (bench.limit(syn), bench.limit(cloth)) == (800, 400)
    assert bench._base(cloth, "autogluon_mm", 0, 0.0, 0.0)["time_limit"] == 400
    assert bench._watchdog(cloth) == 3 * 400 + 600
    fixed = Bench(BenchSpec(datasets=["cloth"], configs=["baseline"], seeds=[0], out_dir=str(tmp_path / "o3"),
                            profile="standard", data_dir=str(data), time_limit=30))
    assert fixed.limit(fixed.datasets[0]) == 30


# ------------------------------------------------------------------- what a line records
def test_fit_summary_keeps_plan_last_lr_and_validation_count():
    from mmtricks.bench.worker import fit_summary

    plan = {"micro_batch": 32, "accumulate": 2, "effective_batch": 64, "planned_steps": 120, "warmup_steps": 12,
            "horizon": 96, "horizon_changes": [[3, 96, "time limit: accumulate 2"]], "final_lr": 0.0,
            "min_steps": 100, "floor_reached": False}
    history = [{"step": 4, "lr": 1e-4, "val_score": 0.5}, {"step": 8, "lr": 3e-5, "val_score": 0.6}]
    info = {"steps": 8, "epochs": 2.0, "stopped": "time_limit", "train_seconds": 20.0, "history": history,
            "plan": plan, "val_score": 0.6}
    got = fit_summary(info)
    assert got == {"steps": 8, "epochs": 2.0, "stopped": "time_limit", "train_seconds": 20.0, "plan": plan,
                   "last_lr": 3e-5, "n_validations": 2, "seconds_per_step": 2.5}
    before_plans = fit_summary({"steps": 0, "epochs": 0.0, "stopped": "time_limit", "train_seconds": 1.0})
    assert before_plans["plan"] is None and before_plans["last_lr"] is None and before_plans["n_validations"] == 0
    assert before_plans["seconds_per_step"] is None


def test_fit_summary_of_a_pool_keeps_members_and_weights(tmp_path):
    """A pool predictor (members + ensemble, no history): the summary keeps each member and its weight."""
    from mmtricks.bench.worker import _fit, fit_summary, member_fit_infos
    from mmtricks.predictor import MultimodalPredictor

    df = make_table(str(tmp_path), n=80, kinds=("numerical", "categorical", "text"))
    predictor = MultimodalPredictor(label="y", pool=["linear", "lightgbm"], verbosity=0).fit(df)
    summary = fit_summary(predictor.fit_info_, member_fit_infos(predictor))
    assert [m["name"] for m in summary["members"]] == ["linear", "lightgbm"]
    assert [m["weight"] for m in summary["members"]] == [m["weight"] for m in predictor.fit_info_["members"]]
    assert sum(m["weight"] for m in summary["members"]) == pytest.approx(1.0)
    assert all(set(m) == {"name", "kind", "weight", "val_score", "fit_seconds"} for m in summary["members"])
    assert summary["ensemble"] == predictor.fit_info_["ensemble"] and summary["val_score"] == predictor.fit_info_[
        "val_score"]
    assert summary["steps"] is None and summary["seconds_per_step"] is None and summary["n_validations"] == 0

    # The worker fits preset 'best' (here with two classic members) and records the same.
    req = {"config": "best", "label": "y", "problem_type": "multiclass", "metric": "accuracy",
           "overrides": {"ensemble.members": "linear,lightgbm"}, "time_limit": None, "seed": 0,
           "image_columns": [], "text_columns": ["txt"], "tabular_columns": ["num_a", "num_b", "cat_a"],
           "base_dir": str(tmp_path)}
    info, classes, predict, summary, members = _fit(req, df)
    assert [m["name"] for m in summary["members"]] == ["linear", "lightgbm"] and info["members"]
    assert summary["ensemble"]["method"] and sorted(classes) == ["a", "b", "c"]
    assert predict(df.drop(columns=["y"]).head(5)).shape == (5, 3)
    alone = members(df.drop(columns=["y"]).head(5))
    assert list(alone) == ["linear", "lightgbm"] and all(o.shape == (5, 3) for o in alone.values())

    # run_request scores each member alone on the test rows too (the ensemble-vs-best-member reading).
    from mmtricks.bench.scoring import score_outputs
    from mmtricks.bench.worker import run_request

    df.iloc[:60].to_parquet(tmp_path / "train.parquet")
    df.iloc[60:].to_parquet(tmp_path / "test.parquet")
    result = run_request({**req, "train_path": str(tmp_path / "train.parquet"),
                          "tests": [{"path": str(tmp_path / "test.parquet"), "missing_test": 0.0}]})
    _, classes, _, _, members = _fit(req, df.iloc[:60])
    test = df.iloc[60:]
    alone = list(members(test.drop(columns=["y"])).values())
    for row, out in zip(result["fit_summary"]["members"], alone):
        expected = score_outputs(test["y"], out, classes, "multiclass", "accuracy")["score"]
        assert row["test_score"] == pytest.approx(expected)
    average = score_outputs(test["y"], (alone[0] + alone[1]) / 2, classes, "multiclass", "accuracy")["score"]
    assert result["fit_summary"]["uniform_test_score"] == pytest.approx(average)
    # Every selection method's weights, fitted on the same validation rows, scored on the test rows.
    alternatives = result["fit_summary"]["ensemble"]["alternatives"]
    assert list(alternatives) == ["caruana", "sequential", "uniform", "best"]
    assert alternatives["uniform"] == [0.5, 0.5] and sorted(alternatives["best"]) == [0.0, 1.0]
    chosen = [m["weight"] for m in result["fit_summary"]["members"]]
    assert alternatives["caruana"] == pytest.approx(chosen)  # the method this fit used
    scores = result["fit_summary"]["selection_test_scores"]
    assert scores["uniform"] == pytest.approx(average)
    for name, weights in alternatives.items():
        mixed = sum(w * out for w, out in zip(weights, alone))
        assert scores[name] == pytest.approx(score_outputs(test["y"], mixed, classes, "multiclass",
                                                           "accuracy")["score"]), name

    # A network member's own fit facts join its row; a classic member's row stays as it was.
    plan = {"micro_batch": 32, "accumulate": 1, "floor_reached": False}
    info = {"val_score": 0.9, "ensemble": {"method": "caruana"},
            "members": [{"name": "baseline_plus", "kind": "network", "weight": 0.7, "val_score": 0.88,
                         "fit_seconds": 50},
                        {"name": "lightgbm", "kind": "lightgbm", "weight": 0.3, "val_score": 0.8, "fit_seconds": 2}]}
    child = {"steps": 100, "epochs": 4.0, "stopped": "time_limit", "train_seconds": 40.0, "plan": plan, "history": []}
    got = fit_summary(info, {"baseline_plus": child})
    assert got["members"][0] == {"name": "baseline_plus", "kind": "network", "weight": 0.7, "val_score": 0.88,
                                 "fit_seconds": 50, "steps": 100, "epochs": 4.0, "stopped": "time_limit",
                                 "seconds_per_step": 0.4, "floor_reached": False}
    assert got["members"][1] == info["members"][1]
    assert "members" not in fit_summary({"steps": 1, "train_seconds": 1.0})  # one network: as before


def test_report_lists_pool_members(tmp_path):
    members = [{"name": "lightgbm", "kind": "lightgbm", "weight": 0.25, "val_score": 0.7, "fit_seconds": 2.0},
               {"name": "baseline_plus", "kind": "network", "weight": 0.75, "val_score": 0.8, "fit_seconds": 60.0}]
    lines = [_line("a", "best", seed, 0.8, "image+text", fit_summary={"members": members, "plan": None})
             for seed in (0, 1)]
    lines.append(_line("a", "baseline", 0, 0.7, "image+text"))
    _, report = _report(tmp_path, lines)
    assert "## Ensembles" in report
    assert "| a | best | 2 | lightgbm 0.25 (val 0.7000, 2 of 2); baseline_plus 0.75 (val 0.8000, 2 of 2) |" in report



def test_report_sets_the_ensemble_against_its_best_single_member(tmp_path):
    def members(lgb_test, net_test):
        return [{"name": "lightgbm", "kind": "lightgbm", "weight": 0.5, "val_score": 0.7, "test_score": lgb_test},
                {"name": "baseline_plus", "kind": "network", "weight": 0.5, "val_score": 0.8, "test_score": net_test}]
    lines = [_line("a", "best", 0, 0.84, "image+text", fit_summary={"members": members(0.70, 0.80), "plan": None,
                                                                     "uniform_test_score": 0.78}),
             _line("a", "best", 1, 0.86, "image+text", fit_summary={"members": members(0.72, 0.82), "plan": None})]
    _, report = _report(tmp_path, lines)
    assert "baseline_plus 0.50 (val 0.8000, test 0.8100, 2 of 2)" in report
    assert "| a | best | 2 | 0.8500 | 0.0141 | baseline_plus 0.8100 | +0.0400 | 0.7800 (1 of 2) |" in report
    assert "Every selection method" not in report  # no fit recorded the alternatives

    methods = [{"caruana": 0.84, "uniform": 0.78, "best": 0.80}, {"caruana": 0.86, "uniform": 0.80, "best": 0.82}]
    for line, got in zip(lines, methods):
        line["fit_summary"]["selection_test_scores"] = got
    (tmp_path / "again").mkdir()
    _, report = _report(tmp_path / "again", lines)
    assert "| data set | config | fits | caruana | uniform | best |" in report
    assert "| a | best | 2 | 0.8500 ± 0.0141 | 0.7900 ± 0.0141 | 0.8100 ± 0.0141 |" in report


def test_source_commit_and_dirty_flag(tmp_path):
    from mmtricks.bench.results import source_commit

    assert source_commit(str(tmp_path)) == {"commit": None, "commit_dirty": None}  # not a git checkout
    repo, pkg = tmp_path / "repo", tmp_path / "repo" / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (repo / "notes.md").write_text("outside the package\n")

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    sha = git("rev-parse", "HEAD")
    assert source_commit(str(pkg)) == {"commit": sha, "commit_dirty": False}
    (repo / "notes.md").write_text("changed, but not the package\n")
    assert source_commit(str(pkg))["commit_dirty"] is False
    (pkg / "a.py").write_text("x = 2\n")
    assert source_commit(str(pkg)) == {"commit": sha, "commit_dirty": True}


# ----------------------------------------------------------------------------- contention
def _timed(ds, config, seed, step_s, micro=32, accumulate=1, **extra):
    """A fabricated ok line whose fit took ``step_s`` seconds per optimizer step."""
    plan = {"micro_batch": micro, "accumulate": accumulate, "effective_batch": micro * accumulate,
            "floor_reached": True}
    return _line(ds, config, seed, 0.8, "image+text", fit_summary={
        "steps": 10, "epochs": 1.0, "stopped": "time_limit", "train_seconds": 10 * step_s, "n_validations": 2,
        "last_lr": 1e-5, "seconds_per_step": step_s, "plan": plan}, started_at=f"t{seed}", **extra)


def test_contention_reasons_from_step_times_and_cpu_use():
    from mmtricks.bench.contention import contention_reasons

    earlier = [_timed("a", "baseline", 0, 1.0), _timed("a", "baseline", 1, 1.2),
               _timed("b", "baseline", 0, 5.0),  # another data set
               _timed("a", "baseline_plus", 0, 9.0),  # another config
               _timed("a", "baseline", 3, 0.2, micro=16),  # another micro batch
               _timed("a", "baseline", 4, 3.0, contended=True)]  # a contended line is no yardstick
    # Median of the comparable clean lines: 1.1 s; the limit is 1.3 x 1.1 = 1.43 s.
    assert contention_reasons(_timed("a", "baseline", 2, 1.4), earlier) == []
    [why] = contention_reasons(_timed("a", "baseline", 2, 1.5), earlier)
    assert "1.5 s per micro batch is 1.36x the median 1.1 s of 2 earlier runs" in why
    # A plan that accumulated 2 micro batches a step: 2.6 s a step is 1.3 s a micro batch, not slow.
    assert contention_reasons(_timed("a", "baseline", 2, 2.6, accumulate=2), earlier) == []
    # Lines without a plan compare per step among themselves.
    old = [{**_line("a", "baseline", s, 0.8, "image+text"), "fit_info": {"steps": 10, "train_seconds": 10.0}}
           for s in (0, 1)]
    [why] = contention_reasons({**old[0], "seed": 2, "fit_info": {"steps": 10, "train_seconds": 20.0}}, old)
    assert "2 s per step is 2.00x the median 1 s" in why
    assert contention_reasons(_timed("c", "baseline", 0, 50.0), earlier) == []  # first of its group
    assert contention_reasons({**_timed("a", "baseline", 2, 9.0), "status": "failed"}, earlier) == []

    # CPU used by other processes during the fit (from /proc/stat), or the load average without it.
    def probe(**kw):
        return {"load_before": 1.0, "load_after": 2.1, "cpus": 2, "wall_seconds": 300.0, "others_cores": 0.05,
                **kw}

    assert contention_reasons(_timed("c", "baseline", 0, 1.0, contention=probe()), earlier) == []
    [why] = contention_reasons(_timed("c", "baseline", 0, 1.0, contention=probe(others_cores=0.9)), earlier)
    assert "other processes used 0.90 of 2 cores" in why
    assert contention_reasons(_timed("c", "baseline", 0, 1.0, contention=probe(others_cores=0.9, wall_seconds=5)),
                              earlier) == []  # too short a fit to judge
    [why] = contention_reasons(_timed("c", "baseline", 0, 1.0, contention=probe(others_cores=None, load_after=3.6)),
                               earlier)
    assert "1-minute load 3.60" in why
    assert contention_reasons(_timed("c", "autogluon_mm", 0, 1.0, contention=probe(others_cores=None,
                                                                                   load_after=3.6)), earlier) == []


def test_runner_reruns_a_contended_run_once_and_resume_redoes_it(tmp_path, monkeypatch):
    """No real fits: the runner's unit is replaced by one that returns fabricated lines."""
    from mmtricks.bench.results import append_result
    from mmtricks.bench.runner import Bench, BenchSpec

    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical",))
    for seed, step in ((0, 1.0), (1, 1.1)):
        append_result(str(out), {**_timed("syn", "baseline", seed, step), "profile": "quick"})
    step_times = iter([2.0, 1.05, 2.0, 2.5])
    calls = []

    def fake_unit(self, ds, config, seed, mtrain, tests):
        calls.append(seed)
        return [{**_timed("syn", "baseline", seed, next(step_times)), "started_at": f"call{len(calls)}"}]

    monkeypatch.setattr(Bench, "_unit", fake_unit)
    # The fabricated lines carry no overrides of the profile's: settings are not what this test is about.
    spec = BenchSpec(datasets=["syn"], configs=["baseline"], seeds=[0, 1, 2], out_dir=str(out), data_dir=str(data),
                     allow_other_settings=True)
    counts = Bench(spec, echo=lambda m: None).run()
    assert calls == [2, 2] and counts["ok"] == 1 and counts["contended"] == 0  # slow, then rerun at 1.05 s
    seed2 = [r for r in read_results(str(out)) if r["seed"] == 2]
    assert [r["contended"] for r in seed2] == [True, False]
    assert "1.90x the median 1.05 s" in seed2[0]["contended_reason"]
    assert Bench(spec, echo=lambda m: None).plan() == []  # the rerun counts as done

    # Slow twice: both lines flagged, and a resumed bench still has the run to do.
    spec3 = BenchSpec(datasets=["syn"], configs=["baseline"], seeds=[3], out_dir=str(out), data_dir=str(data),
                      allow_other_settings=True)
    calls.clear()
    counts = Bench(spec3, echo=lambda m: None).run()
    assert calls == [3, 3] and counts["contended"] == 1
    assert [r["contended"] for r in read_results(str(out)) if r["seed"] == 3] == [True, True]
    assert [u[2] for u in Bench(spec3, echo=lambda m: None).plan()] == [3]
    progress = (out / "progress.log").read_text()
    assert "running it again" in progress and "left for a resumed bench to redo" in progress

    # --no-contention-check: nothing is judged.
    calls.clear()
    step_times = iter([9.0])
    spec5 = BenchSpec(datasets=["syn"], configs=["baseline"], seeds=[5], out_dir=str(out), data_dir=str(data),
                      check_contention=False, allow_other_settings=True)
    Bench(spec5, echo=lambda m: None).run()
    assert calls == [5] and "contended" not in read_results(str(out))[-1]


def test_report_leaves_contended_runs_out_of_the_means(tmp_path):
    lines = [_timed("a", "baseline", 0, 1.0), _timed("a", "baseline", 1, 1.0),
             {**_timed("a", "baseline", 2, 3.0), "score": 0.2, "contended": True,
              "contended_reason": "other processes used 0.90 of 2 cores on average during the fit (limit 0.25)"}]
    lines[1]["fit_summary"]["plan"].update(floor_reached=False, min_steps=100, steps=10)
    out, report = _report(tmp_path, lines)
    assert "(3 runs: 2 ok, 1 contended and left out of the means)" in report
    assert "0.8000 ± 0.0000 (2)" in report  # the contended 0.2 is not in the mean
    assert "## Contended runs (left out)" in report and "other processes used 0.90 of 2 cores" in report
    assert "| baseline | mmtricks preset | 45.0 | 100.0 | 0.50 | 0.50 | 900 | 2 / 0 / 0 |" in report
    assert "1 of 2 mmtricks fits with a recorded plan reached their step floor" in report
    assert "| a | baseline | 1 | 10 | 100 | 32 | time_limit | 0.50 |" in report  # with the share of its limit used


# ------------------------------------------------------------ a folder and --label (#15)
def test_folder_without_description_and_label_is_inferred(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    df = make_table(str(folder), n=90, relative=True)
    df.iloc[:60].to_csv(folder / "train.csv", index=False)  # CSV, no dataset.json, no manifest
    df.iloc[60:].to_csv(folder / "test.csv", index=False)
    ds = load_dataset(str(folder), label="y")
    assert (ds.name, ds.label, ds.problem_type, ds.metric) == ("mine", "y", "multiclass", "accuracy")
    assert ds.image_columns == ["img"] and ds.text_columns == ["txt"]
    assert ds.tabular_columns == ["num_a", "num_b", "cat_a"] and ds.modalities == ["image", "text", "tabular"]
    assert ds.base_dir == str(folder) and (len(ds.train), len(ds.test)) == (60, 30)

    reg = tmp_path / "reg"  # parquet, regression: the predictor's default metric for it
    reg.mkdir()
    r = make_table(str(reg), n=60, kinds=("numerical", "text"), problem_type="regression")
    r.iloc[:40].to_parquet(reg / "train.parquet")
    r.iloc[40:].to_parquet(reg / "test.parquet")
    rds = load_dataset(str(reg), label="y")
    assert (rds.problem_type, rds.metric, rds.modalities, rds.image_columns) == ("regression", "r2",
                                                                               ["text", "tabular"], [])
    from mmtricks.errors import SchemaError

    with pytest.raises(SchemaError, match="--label"):
        load_dataset(str(folder))
    with pytest.raises(ConfigError, match="'category'"):  # a described data set keeps its own label
        load_dataset(EMOJI, label="name")

    out = tmp_path / "out"
    rc = main(["bench", "--datasets", str(folder), "--label", "y", "--configs", "linear", "--seeds", "0",
               "--out", str(out), "--no-contention-check"])
    assert rc == 0
    [line] = read_results(str(out))
    assert (line["status"], line["dataset"], line["metric"], line["problem_type"]) == ("ok", "mine", "accuracy",
                                                                                     "multiclass")
    assert line["modality_group"] == "image+text+tabular" and line["score"] > 0.8 and line["n_test"] == 30
    rc = main(["bench", "--datasets", str(folder), "--configs", "linear", "--out", str(tmp_path / "o2")])
    assert rc == 2 and "--label" in capsys.readouterr().err


def test_cpu_use_of_other_processes_from_proc_stat(tmp_path, monkeypatch):
    import time

    from mmtricks.bench import contention

    stat = tmp_path / "stat"
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice (ticks); idle and iowait are not busy.
    stat.write_text(f"cpu  {10 * tick} {tick} {2 * tick} {500 * tick} {7 * tick} 0 {tick} {3 * tick} 0 0\ncpu0 1 2\n")
    assert contention.busy_cpu_seconds(str(stat)) == pytest.approx(17.0)
    assert contention.busy_cpu_seconds(str(tmp_path / "absent")) is None
    # 60 busy CPU seconds over a 30-s fit whose own process used 30: others used 1 core on average.
    busy = iter([160.0])
    monkeypatch.setattr(contention, "busy_cpu_seconds", lambda *a: next(busy))
    probe = {"t": time.monotonic() - 30.0, "load": 1.5, "busy": 100.0}
    got = contention.finish_probe(probe, child_cpu_seconds=30.0)
    assert got["others_cores"] == pytest.approx(1.0, abs=0.01) and got["load_before"] == 1.5
    assert got["wall_seconds"] == pytest.approx(30.0, abs=0.5) and got["run_cpu_seconds"] == 30.0


def test_report_reads_each_config_against_baseline_plus_beside_the_seed_spread(tmp_path):
    lines = []
    for seed, noise in enumerate((-0.01, 0.0, 0.01)):
        lines += [_line("a", "baseline_plus", seed, 0.80 + noise, "image+text"),
                  _line("a", "lf_transformer", seed, 0.90 + noise, "image+text"),  # +0.10, spread 0.01: better
                  _line("a", "early_fusion", seed, 0.805 - noise, "image+text"),  # +0.005 within 0.01
                  _line("b", "baseline_plus", seed, 1.0 + noise, "text+tabular", metric="rmse", higher=False),
                  _line("b", "lf_transformer", seed, 1.2 + noise, "text+tabular", metric="rmse", higher=False)]
    lines.append(_line("a", "lemda", 0, 0.95, "image+text"))  # one seed: nothing to read
    _, report = _report(tmp_path, lines)
    assert "## Against baseline_plus" in report
    assert "| lf_transformer | a | 3 / 3 | +0.1000 | 0.0100 | better |" in report
    assert "| lf_transformer | b | 3 / 3 | -0.2000 | 0.0100 | worse |" in report  # rmse: higher is worse
    assert "| early_fusion | a | 3 / 3 | +0.0050 | 0.0100 | within spread |" in report
    assert "| lemda | a | 1 / 3 | +0.1500 | – | one seed |" in report



def test_report_gives_time_and_memory_per_data_set(tmp_path):
    lines = [_line("a", "lf_sf", seed, 0.8, "image+text", peak_rss_mb=1000.0 + 100 * seed, fit_seconds=100.0,
                   fit_info={"epochs": 2.0}, fit_summary={"steps": 100 + seed, "seconds_per_step": 0.5 + seed})
             for seed in range(3)]
    _, report = _report(tmp_path, lines)
    assert "## Time and memory per data set" in report
    assert "| a | lf_sf | 3 | 101 | 1.50 | 50.0 | 1100 |" in report


def test_bf16_gate_passes_fails_or_waits_on_the_seed_spread(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bf16_gate", os.path.join(
        os.path.dirname(__file__), "..", "scripts", "bf16_gate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def runs(scores, step):
        return [_line("a", "baseline_plus", seed, s, "image+text", fit_summary={"seconds_per_step": step})
                for seed, s in enumerate(scores)]
    bf16 = runs([0.80, 0.82, 0.81], 2.0)
    rows, verdict = module.gate(bf16, runs([0.805, 0.815, 0.82], 3.0), "baseline_plus")
    assert verdict.startswith("bf16 passes") and rows[0][5:] == ["2.00", "3.00", "within spread"]
    rows, verdict = module.gate(bf16, runs([0.90, 0.91, 0.92], 3.0), "baseline_plus")
    assert verdict.startswith("bf16 fails") and "a" in verdict and rows[0][3] == "+0.1000"
    assert module.gate(bf16, runs([0.9], 3.0), "baseline_plus")[1].startswith("undecided")
    assert module.gate(bf16, [], "baseline_plus")[1].startswith("undecided: no baseline_plus runs in the fp32")


def test_step_cost_script_times_a_presets_training_step(tmp_path, capsys):
    import importlib.util

    from bench_helpers import _write_set

    spec = importlib.util.spec_from_file_location("step_cost", os.path.join(
        os.path.dirname(__file__), "..", "scripts", "step_cost.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _write_set(str(tmp_path), n_train=40, n_test=10)
    assert module.main(["syn", "--data-dir", str(tmp_path), "--presets", "tiny,lf_transformer", "--rows", "8",
                        "--repeats", "1", "--precision", "32-true", "--limit", "100", "--set", "text.tiny=true",
                        "--set", "text.pretrained=false", "--set", "image.backbone=test_efficientnet",
                        "--set", "image.pretrained=false", "--set", "data.image_size=32"]) == 0
    out = capsys.readouterr().out
    assert "syn: 8 rows a step, 32-true" in out
    assert re.search(r"tiny: \d+\.\d\d s a step; 100 s buy about \d+ steps", out)
    assert re.search(r"lf_transformer: \d+\.\d\d s a step", out)


# ------------------------------------------------------------------- collapsed fits
def test_constant_predictor_scores_majority_share_half_auc_and_train_mean():
    from mmtricks.bench.scoring import constant_score

    # Majority class of the training labels ('b') on every test row: 3 of 5 right.
    assert constant_score(["a", "b", "b", "b"], ["a", "b", "b", "a", "b"], "multiclass", "accuracy") == pytest.approx(0.6)
    assert constant_score([0, 1, 1], [0, 1, 0, 1], "binary", "roc_auc") == pytest.approx(0.5)  # one score for all
    # The training mean (2) for test labels 1 and 5: R2 = 1 - (1 + 9) / (4 + 4).
    assert constant_score([1.0, 2.0, 3.0], [1.0, 5.0], "regression", "r2") == pytest.approx(-0.25)
    assert constant_score([1.0, 2.0, 3.0], [1.0, 5.0], "regression", "rmse") == pytest.approx(np.sqrt(5.0))


def test_report_leaves_collapsed_fits_out_of_the_scores(tmp_path, capsys):
    from mmtricks.bench.scoring import constant_score

    data = tmp_path / "data"
    _write_set(str(data))
    ds = load_dataset("syn", str(data))
    const = constant_score(ds.train[ds.label], ds.test[ds.label], ds.problem_type, "accuracy")
    assert 0 < const < 1
    lines = [_line("syn", "baseline", s, const + 0.1 + 0.01 * s, "image+text+tabular") for s in (0, 1)]
    lines += [_line("syn", "linear", 0, const, "image+text+tabular"),  # no better than the constant: collapsed
              _line("syn", "linear", 1, const + 0.05, "image+text+tabular")]
    # Without the data the runs cannot be judged, and the report says how to judge them.
    out, report = _report(tmp_path, lines)
    assert "4 runs could not be judged" in report and "--data-dir" in report
    assert "[1 collapsed]" not in report
    # With it, the constant predictor's score is recorded once per (profile, data set, seed) and used.
    assert main(["bench", "report", str(out), "--data-dir", str(data)]) == 0
    assert "recorded the constant predictor's score for 2" in capsys.readouterr().out
    constants = json.loads((out / "constants.json").read_text())
    assert set(constants) == {"quick|syn|0", "quick|syn|1"}
    assert constants["quick|syn|0"]["constant_score"] == pytest.approx(const)
    report = (out / "report.md").read_text()
    assert f"{const + 0.05:.4f} ± – (1) [1 collapsed]" in report  # the collapsed run is out of the mean
    assert f"{const + 0.105:.4f} ± 0.0071 (2)" in report  # baseline untouched
    assert "1 of 4 runs scored no better on the test rows than the constant predictor" in report
    assert f"| syn | linear | 1 | 0 | clean rows | {const:.4f} | {const:.4f} |" in report
    assert "could not be judged" not in report
