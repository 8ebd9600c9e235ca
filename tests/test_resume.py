"""Crash safety: a fit killed with SIGKILL resumes from its last resume point."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mmtricks import MultimodalPredictor

from conftest import make_table

SETTINGS = dict(label="y", preset="tiny", seed=1, verbosity=0,
                overrides={"optim.max_epochs": 12, "optim.batch_size": 8, "optim.micro_batch_size": 8,
                           "optim.val_checks_per_epoch": 4, "optim.patience": 1000})

CHILD = """
import sys, torch, pandas as pd
torch.set_num_threads(1)
from mmtricks import MultimodalPredictor
settings = {settings!r}
MultimodalPredictor(work_dir=sys.argv[2], **settings).fit(pd.read_parquet(sys.argv[1]))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_then_resume_matches_an_uninterrupted_fit(tmp_path):
    df = make_table(str(tmp_path), n=64, kinds=("numerical", "categorical", "text"))
    data = tmp_path / "train.parquet"
    df.to_parquet(data)
    reference = MultimodalPredictor(work_dir=str(tmp_path / "ref"), **SETTINGS).fit(df)

    work = tmp_path / "work"
    state_file = work / "resume" / "state.json"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(settings=SETTINGS), str(data), str(work)])
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None:
        if state_file.is_file():
            try:
                step = json.loads(state_file.read_text())["step"]
            except (ValueError, KeyError):
                step = 0
            if step >= 10:
                child.send_signal(signal.SIGKILL)
                child.wait()
                killed_at = step
                break
        time.sleep(0.01)
    assert killed_at is not None, "the child finished or stalled before it could be killed"
    assert child.returncode == -signal.SIGKILL

    point = json.loads(state_file.read_text())["step"]  # the last point written before the kill
    assert point >= killed_at
    resumed = MultimodalPredictor(work_dir=str(work), **SETTINGS).fit(df, resume=True)
    assert resumed.fit_info_["resumed_from_step"] == point
    assert resumed.fit_info_["steps"] == reference.fit_info_["steps"]
    np.testing.assert_allclose(resumed.predict_proba(df).to_numpy(), reference.predict_proba(df).to_numpy(),
                               atol=1e-6)


def test_resume_refuses_a_work_dir_of_another_fit(tmp_path):
    df = make_table(str(tmp_path), n=40, kinds=("numerical",))
    settings = {**SETTINGS, "overrides": {**SETTINGS["overrides"], "optim.max_epochs": 1}}
    MultimodalPredictor(work_dir=str(tmp_path / "w"), **settings).fit(df)
    other = {**settings, "seed": 2}
    with pytest.raises(ValueError, match="different fit"):
        MultimodalPredictor(work_dir=str(tmp_path / "w"), **other).fit(df, resume=True)
    with pytest.raises(ValueError, match="work_dir"):
        MultimodalPredictor(**settings).fit(df, resume=True)
