"""The command line: fit / predict / evaluate / config, errors, and a fast --help."""
import json
import os
import subprocess
import sys

import pandas as pd

from mmtricks.cli import main

from conftest import make_table


def test_fit_predict_evaluate(tmp_path, capsys):
    df = make_table(str(tmp_path), n=60, kinds=("numerical", "categorical", "text", "image"), relative=True)
    train = tmp_path / "train.parquet"
    df.to_parquet(train)
    out = tmp_path / "model"
    rc = main(["fit", "--train", str(train), "--label", "y", "--preset", "tiny", "--set", "optim.max_epochs=1",
               "--out", str(out), "--quiet"])
    assert rc == 0 and (out / "weights.safetensors").is_file()
    capsys.readouterr()
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(out), "--data", str(train), "--out", str(preds), "--proba"]) == 0
    got = pd.read_csv(preds)
    assert len(got) == 60 and {"y", "proba_a", "proba_b", "proba_c"} <= set(got.columns)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(train)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores)[0] == "accuracy" and 0.0 <= scores["accuracy"] <= 1.0


def test_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    df = make_table(str(tmp_path), n=20, kinds=("numerical",))
    train = tmp_path / "t.csv"
    df.to_csv(train, index=False)
    rc = main(["fit", "--train", str(train), "--label", "y", "--set", "optim.lrr=1", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and "Did you mean 'optim.lr'" in err and "Traceback" not in err
    rc = main(["fit", "--train", str(train), "--label", "z", "--out", str(tmp_path / "m")])
    assert rc == 2 and "Label column 'z'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_config_lists_every_key(capsys):
    assert main(["config", "--preset", "baseline"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["optim"]["soup"] == "best"


def test_help_and_import_stay_light():
    code = ("import sys, mmtricks, mmtricks.cli, mmtricks.config, mmtricks.presets; "
            "heavy = [m for m in ('torch', 'transformers', 'timm', 'pandas') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    out = subprocess.run([sys.executable, "-m", "mmtricks.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_shipped_demo_data():
    from mmtricks.demo import demo_data_dir

    folder = demo_data_dir()
    meta = json.load(open(os.path.join(folder, "dataset.json")))
    train = pd.read_parquet(os.path.join(folder, "train.parquet"))
    test = pd.read_parquet(os.path.join(folder, "test.parquet"))
    assert len(train) + len(test) <= 400 and meta["label"] in train.columns
    assert "sort_order" not in train.columns
    assert all(os.path.isfile(os.path.join(folder, p)) for p in pd.concat([train, test])["image"])
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder) for f in fs)
    assert size < 2 * 1024 * 1024
    assert os.path.isfile(os.path.join(folder, "LICENSE-images-Apache-2.0.txt"))


def test_fit_resume_from_the_cli(tmp_path, capsys):
    df = make_table(str(tmp_path), n=40, kinds=("numerical", "categorical"))
    train = tmp_path / "train.csv"
    df.to_csv(train, index=False)
    args = ["fit", "--train", str(train), "--label", "y", "--preset", "tiny", "--set", "optim.max_epochs=1",
            "--out", str(tmp_path / "m"), "--work-dir", str(tmp_path / "w"), "--quiet"]
    assert main(args) == 0
    assert (tmp_path / "w" / "resume" / "state.json").is_file()  # an explicit work dir is kept
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    assert "Resuming from step" in capsys.readouterr().out
    assert not (tmp_path / "m.work").exists()
