"""Harness peers: the AutoGluon peer script's contract, its stack kind, and scoring of peer output."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mmtricks.bench import load_dataset
from mmtricks.bench.results import read_results

from bench_helpers import PEER_SCRIPT_DIR, _bench, _write_set


FAKE_PEER = (  # a stand-in for bench/peers/autogluon_run.py: right for even test rows, wrong for odd ones
    "import json, os, sys\n"
    "import pandas as pd\n"
    "req = json.load(open(sys.argv[2]))\n"
    "keys = ['kind', 'train_path', 'test_path', 'base_dir', 'label', 'problem_type', 'metric', 'time_limit',\n"
    "        'seed', 'text_backbone', 'image_backbone', 'max_train_rows', 'text_max_length', 'out_dir']\n"
    "assert all(k in req for k in keys), req\n"
    "if os.path.exists(req['out_dir']): sys.exit(f'stale output folder {req[\"out_dir\"]}')\n"
    "y = list(pd.read_parquet(req['test_path'])[req['label']])\n"
    "classes = ['a', 'b', 'c']\n"
    "guess = [v if i % 2 == 0 else classes[(classes.index(v) + 1) % 3] for i, v in enumerate(y)]\n"
    "os.makedirs(req['out_dir'], exist_ok=True)\n"
    "path = os.path.join(req['out_dir'], 'predictions.parquet')\n"
    "pd.DataFrame([[float(g == c) for c in classes] for g in guess], columns=classes).to_parquet(path)\n"
    "print('some log line')\n"
    "board = {'best': 'WeightedEnsemble_L2', 'automm_trained': True, 'failures': [],\n"
    "         'models': [{'model': 'WeightedEnsemble_L2', 'score_val': 0.9, 'fit_s': 0.1, 'stack_level': 2},\n"
    "                    {'model': 'MultiModalPredictor', 'score_val': 0.8, 'fit_s': 20.0, 'stack_level': 1}]}\n"
    "print(json.dumps({'status': 'ok', 'metric': req['metric'], 'predictions': path, 'classes': classes,\n"
    "                  'n_test': len(y), 'fit_seconds': 1.0, 'predict_seconds': 0.5, 'rows_per_s': 60.0,\n"
    "                  'peak_rss_mb': 10.0, 'versions': {'autogluon': 'fake'}, 'kind': req['kind'],\n"
    "                  **({'leaderboard': board} if req['kind'] == 'stack' else {}),\n"
    "                  'request': os.path.abspath(sys.argv[2])}))\n")


def _use_peer(tmp_path, monkeypatch, script, name="fake_peer.py"):
    """Make ``script`` (run by this interpreter) the AutoGluon peer of the benches that follow."""
    fake = tmp_path / name
    fake.write_text(script)
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_PYTHON", sys.executable)
    monkeypatch.setenv("MMTRICKS_AUTOGLUON_SCRIPT", str(fake))


def test_peer_script_contract_and_missingness_grid(tmp_path, monkeypatch):
    """The peer writes predictions, the harness scores them; the missingness grid fits once per train ratio."""
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical", "categorical", "text"))
    _use_peer(tmp_path, monkeypatch, FAKE_PEER)
    rc = _bench(data, out, "--configs", "linear,autogluon_mm", "--missing-train", "0,0.5", "--missing-test",
                "0,0.5", "--time-limit", "30", "--report")
    assert rc == 0
    lines = read_results(str(out))
    cells = {(r["config"], r["missing_train"], r["missing_test"]) for r in lines}
    assert cells == {(c, a, b) for c in ("linear", "autogluon_mm") for a in (0.0, 0.5) for b in (0.0, 0.5)}
    assert all(r["status"] == "ok" for r in lines)
    peer = [r for r in lines if r["config"] == "autogluon_mm"][0]
    assert peer["score"] == 0.5 and peer["time_over_limit"] > 0
    # The peer's own versions only: none of mmtricks' transformers / timm on its line.
    assert peer["versions"] == {"autogluon": "fake"} and peer["harness_versions"]["mmtricks"]
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
    assert "AutoGluon peers' own virtualenv: autogluon fake" in report
    assert (out / "plots" / "missingness.png").is_file()


def test_a_resumed_peer_run_starts_without_the_interrupted_attempts_folder(tmp_path, monkeypatch):
    """An interrupted AutoGluon run leaves its output folder; the rerun removes it before the peer starts."""
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical", "categorical", "text"))
    _use_peer(tmp_path, monkeypatch, FAKE_PEER)
    stale = out / "scratch" / "quick" / "syn" / "seed0" / "runs" / "autogluon_tabular_m0" / "t0" / "out"
    stale.mkdir(parents=True)
    (stale / "learner.pkl").write_text("from the interrupted attempt")
    assert _bench(data, out, "--configs", "autogluon_tabular", "--time-limit", "30") == 0
    (line,) = read_results(str(out))
    assert line["status"] == "ok", line.get("reason")
    assert not (stale / "learner.pkl").exists()


def test_autogluon_stack_gets_the_same_rows_and_limit_and_its_leaderboard_is_kept(tmp_path, monkeypatch):
    """autogluon_stack: the request of autogluon_mm with kind 'stack'; the stack's leaderboard lands on the line."""
    from mmtricks.bench.configs import AUTOGLUON_KIND, check_configs, config_kind

    assert check_configs(["autogluon_stack", "best"]) == ["autogluon_stack", "best"]
    assert config_kind("autogluon_stack") == "peer" and config_kind("best") == "preset"
    assert AUTOGLUON_KIND["autogluon_stack"] == "stack"
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data))  # numbers, a category, text and relative image paths
    _use_peer(tmp_path, monkeypatch, FAKE_PEER)
    assert _bench(data, out, "--configs", "autogluon_tabular,autogluon_mm,autogluon_stack", "--time-limit", "30",
                  "--report") == 0
    lines = {r["config"]: r for r in read_results(str(out))}
    assert all(r["status"] == "ok" for r in lines.values())
    runs = out / "scratch" / "quick" / "syn" / "seed0" / "runs"
    req = {c: json.loads((runs / f"{c}_m0" / "t0" / "request.json").read_text()) for c in lines}
    assert [req[c]["kind"] for c in ("autogluon_tabular", "autogluon_mm", "autogluon_stack")] == [
        "tabular", "multimodal", "stack"]
    for key in ("train_path", "test_path", "base_dir", "max_train_rows", "time_limit", "seed", "image_columns",
                "text_columns", "tabular_columns", "text_backbone", "image_backbone", "text_max_length",
                "image_size", "label", "problem_type", "metric", "num_threads"):
        assert req["autogluon_stack"][key] == req["autogluon_mm"][key] == req["autogluon_tabular"][key], key
    assert req["autogluon_stack"]["time_limit"] == 30 and req["autogluon_stack"]["max_train_rows"] == 2000
    assert req["autogluon_stack"]["image_columns"] == ["img"] and req["autogluon_stack"]["text_columns"] == ["txt"]
    stack = lines["autogluon_stack"]
    assert stack["score"] == 0.5 and stack["versions"] == {"autogluon": "fake"} and stack["time_limit"] == 30
    assert stack["leaderboard"]["best"] == "WeightedEnsemble_L2" and "leaderboard" not in stack["peer_output"]
    assert [m["model"] for m in stack["leaderboard"]["models"]] == ["WeightedEnsemble_L2", "MultiModalPredictor"]
    assert "leaderboard" not in lines["autogluon_mm"]
    report = (out / "report.md").read_text()
    assert "| autogluon_mm | peer |" in report and "| autogluon_stack | peer |" in report
    assert report.index("| autogluon_mm | peer |") < report.index("| autogluon_stack | peer |") < report.index(
        "| autogluon_tabular | peer |")  # the peers side by side
    assert "## Ensembles" in report and "| syn | 1 | WeightedEnsemble_L2 | 1 | 0.8000 |" in report

    # What the peer script builds for TabularPredictor.fit (AutoGluon is not installed here: the script's own
    # functions, run by this interpreter in a child process, as the script imports nothing from AutoGluon at the top).
    frame = pd.read_parquet(req["autogluon_stack"]["train_path"])
    assert not os.path.isabs(frame["img"].iloc[0])  # the data set keeps relative paths
    code = """
import json, sys
import pandas as pd
sys.path.insert(0, sys.argv[1])
import autogluon_run as a
req = json.load(open(sys.argv[2]))
train = pd.read_parquet(req["train_path"])
automm = a.automm_hyperparameters(req, "/models/minilm", "/models/effnet")
multimodal = {"NN_TORCH": {}, "GBM": [{}, {"extra_trees": True}], "CAT": {}, "XGB": {}, "AG_AUTOMM": {}}
hp = a.stack_hyperparameters(multimodal, automm, req["seed"])
board = pd.DataFrame({"model": ["WeightedEnsemble_L2", "LightGBM", "MultiModalPredictor"],
                      "score_val": [0.91, 0.9, 0.85], "eval_metric": "accuracy", "fit_time_marginal": [0.1, 2.0, 40.0],
                      "fit_time": [42.1, 2.0, 40.0], "stack_level": [2, 1, 1]})
fails = pd.DataFrame({"model": ["CatBoost"], "exc_type": ["TimeLimitExceeded"]})
special = a.stack_special_types(req["image_columns"], req["text_columns"])
print(json.dumps({"hp": hp, "automm": automm, "special": special,
                  "paths": list(a.absolutize(train, req["image_columns"], a.Path(req["base_dir"]))["img"]),
                  "board": a.compact_leaderboard(board, "WeightedEnsemble_L2", fails), "kinds": list(a.KINDS)}))
"""
    done = subprocess.run([sys.executable, "-c", code, PEER_SCRIPT_DIR, str(runs / "autogluon_stack_m0" / "t0" /
                                                                            "request.json")],
                          capture_output=True, text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert "stack" in got["kinds"]
    # AutoGluon's multimodal config kept, AG_AUTOMM given the autogluon_mm peer's hyperparameters (and the seed).
    assert {k: v for k, v in got["hp"].items() if k != "AG_AUTOMM"} == {
        "NN_TORCH": {}, "GBM": [{}, {"extra_trees": True}], "CAT": {}, "XGB": {}}
    assert got["hp"]["AG_AUTOMM"] == {**got["automm"], "seed": 0}
    automm = got["hp"]["AG_AUTOMM"]
    assert automm["model.hf_text.checkpoint_name"] == "/models/minilm"
    assert automm["model.timm_image.checkpoint_name"] == "/models/effnet"
    assert automm["model.hf_text.text_trivial_aug_maxscale"] == 0.0 and automm["optim.lemda.turn_on"] is False
    assert automm["model.hf_text.max_text_len"] == 64 and automm["model.timm_image.image_size"] == 128  # quick
    # Image columns declared as AutoGluon's image_path special type, text as text; paths absolute and existing.
    assert got["special"] == {"img": ["image_path"], "txt": ["text"]}
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in got["paths"])
    assert got["board"] == {
        "eval_metric": "accuracy", "score_form": "higher is better", "best": "WeightedEnsemble_L2",
        "models": [{"model": "WeightedEnsemble_L2", "score_val": 0.91, "fit_s": 0.1, "stack_level": 2},
                   {"model": "LightGBM", "score_val": 0.9, "fit_s": 2.0, "stack_level": 1},
                   {"model": "MultiModalPredictor", "score_val": 0.85, "fit_s": 40.0, "stack_level": 1}],
        "failures": [{"model": "CatBoost", "exc_type": "TimeLimitExceeded"}], "automm_trained": True}


STUB_AUTOGLUON = {  # just enough of AutoGluon's API for autogluon_run.py's stack kind; records what it was given
    "autogluon/__init__.py": "",
    "autogluon/core/__init__.py": "__version__ = '0.0-stub'\n",
    "autogluon/tabular/configs/__init__.py": "",
    "autogluon/tabular/configs/hyperparameter_configs.py": (
        "def get_hyperparameter_config(name):\n"
        "    assert name == 'multimodal', name\n"
        "    return {'NN_TORCH': {}, 'GBM': [{}, {'extra_trees': True}], 'CAT': {}, 'XGB': {}, 'AG_AUTOMM': {}}\n"),
    "autogluon/tabular/models/__init__.py": (
        "class MultiModalPredictorModel:\n    minimum_num_gpus = 1\n    gpu_required = True\n"),
    "autogluon/tabular/__init__.py": (
        "import json, os\n"
        "import pandas as pd\n"
        "class FeatureMetadata:\n"
        "    def __init__(self, special):\n        self.special = special\n"
        "    @classmethod\n"
        "    def from_df(cls, df):\n        return cls({c: [] for c in df.columns})\n"
        "    def add_special_types(self, types):\n"
        "        new = {k: list(v) for k, v in self.special.items()}\n"
        "        for c, t in types.items():\n            new[c] += t\n"
        "        return FeatureMetadata(new)\n"
        "    def get_feature_types_special(self, c):\n        return list(self.special[c])\n"
        "    def get_features(self):\n        return list(self.special)\n"
        "class TabularPredictor:\n"
        "    model_best = 'WeightedEnsemble_L2'\n"
        "    def __init__(self, **kwargs):\n        self.init = kwargs\n"
        "    def fit(self, train, **kwargs):\n"
        "        self.classes = sorted(train[self.init['label']].unique())\n"
        "        hp = {k if isinstance(k, str) else k.__module__ + '.' + k.__name__: v\n"
        "              for k, v in kwargs['hyperparameters'].items()}\n"
        "        record = {'init': {k: v for k, v in self.init.items()}, 'hyperparameters': hp,\n"
        "                  'time_limit': kwargs['time_limit'], 'special': kwargs['feature_metadata'].special,\n"
        "                  'n_train': len(train), 'columns': list(train.columns), 'images': list(train['img'])}\n"
        "        json.dump(record, open(os.environ['STUB_RECORD'], 'w'))\n"
        "        return self\n"
        "    def predict_proba(self, df):\n"
        "        return pd.DataFrame([[1.0 / len(self.classes)] * len(self.classes)] * len(df), columns=self.classes)\n"
        "    def leaderboard(self):\n"
        "        return pd.DataFrame({'model': ['WeightedEnsemble_L2', 'MultiModalPredictor', 'LightGBM'],\n"
        "                             'score_val': [0.9, 0.8, 0.7], 'eval_metric': 'accuracy',\n"
        "                             'fit_time_marginal': [0.1, 30.0, 1.0], 'stack_level': [2, 1, 1]})\n"
        "    def model_failures(self):\n"
        "        return pd.DataFrame({'model': ['CatBoost'], 'exc_type': ['TimeLimitExceeded']})\n"
        "    def model_names(self):\n        return list(self.leaderboard()['model'])\n"),
}


def test_autogluon_stack_script_calls_tabular_predictor_as_documented(tmp_path):
    """The real peer script, kind 'stack', against a stub of AutoGluon's API: what reaches TabularPredictor.fit."""
    from mmtricks.bench.autogluon import build_request, parse_output
    from mmtricks.bench.profiles import get_profile

    stub = tmp_path / "stub"
    for rel, text in STUB_AUTOGLUON.items():
        (stub / rel).parent.mkdir(parents=True, exist_ok=True)
        (stub / rel).write_text(text)
    text_dir, image_dir = tmp_path / "minilm", tmp_path / "effnet"
    for folder in (text_dir, image_dir):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    (image_dir / "pytorch_model.bin").write_bytes(b"")
    data = tmp_path / "data"
    _write_set(str(data), n_train=60, n_test=20)
    ds = load_dataset("syn", data_dir=str(data))
    profile = get_profile("quick")
    request = build_request("stack", os.path.join(ds.base_dir, "train.parquet"), os.path.join(ds.base_dir,
                            "test.parquet"), ds, profile, 45.0, 3, str(tmp_path / "out"))
    request.update(text_backbone=str(text_dir), image_backbone=str(image_dir), max_train_rows=50)
    (tmp_path / "request.json").write_text(json.dumps(request))
    env = dict(os.environ, PYTHONPATH=str(stub), STUB_RECORD=str(tmp_path / "record.json"))
    done = subprocess.run([sys.executable, os.path.join(PEER_SCRIPT_DIR, "autogluon_run.py"), "--request",
                           str(tmp_path / "request.json")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout
    assert len(done.stdout.strip().splitlines()) == 1  # one JSON line on stdout, the rest on stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["time_limit"] == 45.0 and record["n_train"] == 50  # the request's limit and row cap
    assert record["init"]["label"] == "y" and record["init"]["problem_type"] == "multiclass"
    assert record["init"]["eval_metric"] == "accuracy" and record["init"]["learner_kwargs"] == {"random_state": 3}
    assert record["special"]["img"] == ["image_path"] and record["special"]["txt"] == ["text"]
    assert record["special"]["num_a"] == [] and "y" not in record["special"]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in record["images"])  # resolved against base_dir
    hp = record["hyperparameters"]
    # No GPU: AG_AUTOMM goes in as the CPU subclass, with the multimodal kind's hyperparameters and the seed.
    assert "AG_AUTOMM" not in hp and set(hp) == {"NN_TORCH", "GBM", "CAT", "XGB",
                                                  "ag_cpu_automm.CPUMultiModalPredictorModel"}
    automm = hp["ag_cpu_automm.CPUMultiModalPredictorModel"]
    assert automm["model.hf_text.checkpoint_name"] == str(text_dir.resolve()) and automm["seed"] == 3
    assert automm["model.timm_image.checkpoint_name"] == str(image_dir.resolve())
    assert automm["model.hf_text.text_trivial_aug_maxscale"] == 0.0
    assert automm["model.hf_text.max_text_len"] == 64 and automm["model.timm_image.image_size"] == 128

    out = parse_output(done.stdout)
    assert out["status"] == "ok" and out["n_scored"] == 20 and out["versions"]["autogluon"] == "0.0-stub"
    assert out["leaderboard"]["best"] == "WeightedEnsemble_L2" and out["leaderboard"]["automm_trained"] is True
    assert out["leaderboard"]["failures"] == [{"model": "CatBoost", "exc_type": "TimeLimitExceeded"}]
    assert [m["fit_s"] for m in out["leaderboard"]["models"]] == [0.1, 30.0, 1.0]
    settings = out["settings"]
    assert "CPUMultiModalPredictorModel" in settings["automm_model"] and "weights_check_error" in settings

    # With automm_on_cpu false, AutoGluon's own AG_AUTOMM key (which a CPU-only machine skips).
    (tmp_path / "request.json").write_text(json.dumps({**request, "automm_on_cpu": False}))
    subprocess.run([sys.executable, os.path.join(PEER_SCRIPT_DIR, "autogluon_run.py"), "--request",
                    str(tmp_path / "request.json")], capture_output=True, text=True, env=env, check=True)
    assert "AG_AUTOMM" in json.loads((tmp_path / "record.json").read_text())["hyperparameters"]


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
    _use_peer(tmp_path, monkeypatch, "import json, sys\nprint('Traceback: ...', file=sys.stderr)\n"
              "print(json.dumps({'status': 'error', 'error': 'FileNotFoundError: no timm folder'}))\n"
              "sys.exit(1)\n", name="failing_peer.py")
    assert _bench(data, out, "--configs", "autogluon_tabular") == 1  # a failed run: exit code 1
    [line] = read_results(str(out))
    assert line["status"] == "failed" and line["score"] is None
    assert "FileNotFoundError: no timm folder" in line["reason"]


def test_autogluon_script_reports_its_own_versions():
    """The peer script names its own environment's versions (run here with this interpreter)."""
    import torch

    code = ("import json, sys, torch; sys.path.insert(0, sys.argv[1]); import autogluon_run as a; "
            "print(json.dumps(a.peer_versions('9.9.9')))")
    done = subprocess.run([sys.executable, "-c", code, PEER_SCRIPT_DIR], capture_output=True, text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    from importlib import metadata

    assert got["autogluon"] == "9.9.9" and got["torch"] == torch.__version__
    assert got["transformers"] == metadata.version("transformers") and got["timm"] == metadata.version("timm")
