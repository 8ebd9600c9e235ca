"""Crash safety: a CLI fit killed with SIGKILL anywhere resumes to the uninterrupted fit's model.

The child process is the real ``mmtricks fit`` command; a patch installed before it runs
sends SIGKILL at one chosen moment (a training forward pass, just after an end-of-epoch
resume point, inside a validation, at the soup, in the middle of the save). The same
command with ``--resume`` must then save a model whose predictions are bit-identical.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmtricks import MultimodalPredictor
from mmtricks.cli import main

from conftest import make_table

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# Dropout in every encoder and the fusion, modality dropout on the rows: every RNG is in use.
FIT = ["--preset", "tiny", "--seed", "1", "--quiet", "--set", "optim.max_epochs=4", "--set", "optim.patience=1000",
       "--set", "optim.val_checks_per_epoch=1", "--set", "data.modality_dropout=0.3"]

CHILD = r"""
import os, signal, sys, torch
torch.set_num_threads(1)
what, at = sys.argv[1], int(sys.argv[2])
seen = [0]

def hit():
    seen[0] += 1
    if seen[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(module, name, before=True, when=lambda *a, **k: True):
    original = getattr(module, name)
    def patched(*args, **kwargs):
        if before and when(*args, **kwargs):
            hit()
        out = original(*args, **kwargs)
        if not before and when(*args, **kwargs):
            hit()
        return out
    setattr(module, name, patched)

import mmtricks.models.net as net, mmtricks.train.loop as loop, mmtricks.persist as persist
if what == "forward":  # a training forward pass: mid-step, mid-epoch
    wrap(net.MultimodalNet, "forward", when=lambda self, batch: self.training)
elif what == "resume_point":  # right after a resume point is written (here: at each epoch's end)
    wrap(loop, "save_resume_point", before=False)
elif what == "validation":  # inside a validation pass
    wrap(loop, "predict_outputs")
elif what == "soup":
    wrap(loop, "make_soup")
elif what == "save":  # half-way through writing the model folder
    wrap(persist, "_write_json")
from mmtricks.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _table(folder: str, kinds) -> str:
    df = make_table(folder, n=48, kinds=kinds)
    path = os.path.join(folder, "train.parquet")
    df.to_parquet(path)
    return path


def _predictions(model: str, data: str) -> np.ndarray:
    return MultimodalPredictor.load(model, verbosity=0).predict_proba(data).to_numpy()


def _reference(kinds, fit=FIT):
    folder = tempfile.mkdtemp(prefix="mmtricks-resume-")
    data = _table(folder, kinds)
    out = os.path.join(folder, "reference")
    assert main(["fit", "--train", data, "--label", "y", "--out", out, *fit]) == 0
    return folder, data, _predictions(out, data), fit


@pytest.fixture(scope="module")
def text_tabular():
    return _reference(("numerical", "categorical", "text"))


@pytest.fixture(scope="module")
def image_tabular():
    return _reference(("numerical", "image"))


def _kill_then_resume(ref, what: str, at: int) -> None:
    folder, data, expected, fit = ref
    out = tempfile.mkdtemp(prefix=f"{what}-{at}-", dir=folder)
    args = ["fit", "--train", data, "--label", "y", "--out", os.path.join(out, "model"), *fit]
    child = subprocess.run([sys.executable, "-c", CHILD, what, str(at), *args], capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == -signal.SIGKILL, f"the kill at {what} #{at} never came:\n{child.stderr[-2000:]}"
    assert main(args + ["--resume"]) == 0
    np.testing.assert_array_equal(_predictions(os.path.join(out, "model"), data), expected)


@pytest.fixture(scope="module")
def three_hooks():
    """Three training hooks at once (two alignment losses, manifold mixup) beside modality dropout."""
    return _reference(("numerical", "categorical", "text"),
                      FIT + ["--set", "tricks.hooks=align_kl,align_infonce,manifold_mixup"])


@pytest.mark.parametrize("what,at", [("forward", 23), ("resume_point", 2)])
def test_a_fit_with_three_hooks_resumes_to_the_same_model(three_hooks, what, at):
    _kill_then_resume(three_hooks, what, at)


@pytest.fixture(scope="module")
def data_and_state_hooks():
    """Hooks with loader-side draws (input augmentation of text and numbers) and with state of their own
    (LeMDA's augmenter and its optimiser), next to an alignment loss."""
    return _reference(("numerical", "categorical", "text"),
                      FIT + ["--set", "tricks.hooks=input_aug,lemda,align_infonce",
                             "--set", "tricks.aug_numeric_noise=0.1"])


def test_a_fit_with_augmentation_and_lemda_resumes_to_the_same_model(data_and_state_hooks):
    _kill_then_resume(data_and_state_hooks, "resume_point", 2)


@pytest.mark.parametrize("what,at", [("resume_point", 2), ("validation", 3), ("soup", 1), ("save", 3)])
def test_kill_at_named_moments_resumes_to_the_same_model(text_tabular, what, at):
    _kill_then_resume(text_tabular, what, at)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(min_value=2, max_value=60))
def test_kill_at_a_random_forward_pass_resumes_to_the_same_model(text_tabular, at):
    _kill_then_resume(text_tabular, "forward", at)


@pytest.mark.parametrize("what,at", [("forward", 17), ("resume_point", 1)])
def test_image_model_resumes_to_the_same_model(image_tabular, what, at):
    _kill_then_resume(image_tabular, what, at)


def test_a_resumed_fit_says_where_it_continued(text_tabular, capsys):
    folder, data, _, _ = text_tabular
    out = tempfile.mkdtemp(prefix="say-", dir=folder)
    args = ["fit", "--train", data, "--label", "y", "--out", os.path.join(out, "model"), *FIT]
    child = subprocess.run([sys.executable, "-c", CHILD, "resume_point", "2", *args], capture_output=True)
    assert child.returncode == -signal.SIGKILL
    state = json.load(open(os.path.join(out, "model.work", "resume", "state.json")))
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    assert f"Resuming from step {state['step']}" in capsys.readouterr().out


def test_resume_refuses_a_work_dir_of_another_fit(tmp_path):
    df = make_table(str(tmp_path), n=40, kinds=("numerical",))
    settings_ = dict(label="y", preset="tiny", seed=1, verbosity=0, overrides={"optim.max_epochs": 1})
    MultimodalPredictor(work_dir=str(tmp_path / "w"), **settings_).fit(df)
    other = {**settings_, "seed": 2}
    with pytest.raises(ValueError, match="different fit"):
        MultimodalPredictor(work_dir=str(tmp_path / "w"), **other).fit(df, resume=True)
    with pytest.raises(ValueError, match="work_dir"):
        MultimodalPredictor(**settings_).fit(df, resume=True)
