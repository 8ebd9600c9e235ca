"""One network on two CPU processes (torchrun, gloo): it trains, and only rank zero writes."""
import os
import shutil
import socket
import subprocess
import sys

import pytest

from mmtricks import MultimodalPredictor

from conftest import make_table

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")

WRAPPER = r"""
import os, sys, torch
torch.set_num_threads(1)
import mmtricks.persist as persist, mmtricks.train.checkpoint as checkpoint, mmtricks.train.resume as resume
log = open(os.path.join(sys.argv[1], "writes-%s.txt" % os.environ["RANK"]), "w")

def spy(module, name):
    original = getattr(module, name)
    def recorded(*args, **kwargs):
        log.write(name + "\n")
        log.flush()
        return original(*args, **kwargs)
    setattr(module, name, recorded)

spy(checkpoint, "save_state")  # top-k checkpoints
spy(resume, "save_state")  # resume points
spy(persist, "save_predictor")  # the model folder
from mmtricks.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_ddp_on_two_cpu_processes_trains_one_member_and_only_rank_zero_writes(tmp_path):
    df = make_table(str(tmp_path), n=96, kinds=("numerical", "categorical"))
    data = tmp_path / "train.parquet"
    df.to_parquet(data)
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    out, work = tmp_path / "model", tmp_path / "work"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [TORCHRUN, "--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(script), str(tmp_path), "fit", "--train", str(data), "--label", "y", "--preset", "tiny", "--quiet",
           "--set", "optim.max_epochs=3", "--set", "env.accelerator=cpu", "--set", "env.devices=2",
           "--set", "env.strategy=ddp", "--out", str(out), "--work-dir", str(work)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0 = (tmp_path / "writes-0.txt").read_text().split()
    rank1 = (tmp_path / "writes-1.txt").read_text().split()
    assert "save_predictor" in rank0 and "save_state" in rank0
    assert rank1 == []  # rank one trained too, but wrote nothing
    p = MultimodalPredictor.load(str(out), verbosity=0)
    assert p.fit_info_["steps"] > 0
    assert len(p.predict(df)) == len(df)
