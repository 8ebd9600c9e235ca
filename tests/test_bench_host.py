"""The machine a bench runs on: recorded on every line, bf16 refused where the CPU emulates it,
one machine and one setting per results folder."""
import json

import pytest

from mmtricks.bench import host
from mmtricks.bench.results import read_results
from mmtricks.cli import main
from mmtricks.errors import ConfigError

from bench_helpers import _bench, _write_set

AVX2 = {"name": "AMD EPYC", "architecture": "x86_64", "isa": ["avx", "avx2", "fma3"], "native_bf16": False,
        "gpu": None}
BF16 = {**AVX2, "isa": ["avx", "avx2", "avx512_bf16", "avx512_f", "fma3"], "native_bf16": True}


def test_bf16_for_presets_is_refused_only_where_the_cpu_would_emulate_it():
    with pytest.raises(ConfigError) as info:
        host.check_precision({"env.precision": "bf16-mixed"}, True, AVX2)
    said = str(info.value)
    assert "env.precision=bf16-mixed" in said and "AMD EPYC" in said and "native bf16: no" in said
    assert "--set env.precision=32-true" in said and "--out" in said
    host.check_precision({"env.precision": "bf16-mixed"}, True, BF16)  # native bf16
    host.check_precision({"env.precision": "bf16-mixed"}, False, AVX2)  # peers only: they ignore it
    host.check_precision({"env.precision": "32-true"}, True, AVX2)
    host.check_precision({}, True, AVX2)  # auto picks 32-true there
    host.check_precision({"env.precision": "bf16-mixed"}, True, {**AVX2, "gpu": "NVIDIA H100"})
    with pytest.raises(ConfigError):  # a GPU the fits are told not to use does not help
        host.check_precision({"env.precision": "bf16-mixed", "env.accelerator": "cpu"}, True,
                             {**AVX2, "gpu": "NVIDIA H100"})


def test_this_machines_fingerprint_matches_torch():
    import torch

    from mmtricks.train.loop import cpu_native_bf16

    mine = host.machine_fingerprint()
    caps = torch.cpu.get_capabilities()
    assert mine["native_bf16"] is cpu_native_bf16()
    assert set(mine["isa"]) == {k for k, v in caps.items() if v is True} and mine["name"]
    assert host.same_machine(mine, dict(mine)) and not host.same_machine(mine, {**mine, "isa": mine["isa"][:-1]})


def test_lines_record_the_machine_and_a_folder_from_another_machine_is_refused(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical", "categorical"))
    assert _bench(data, out, "--configs", "linear") == 0
    (line,) = read_results(str(out))
    assert line["host"]["cpu"] == host.machine_fingerprint()
    # The same folder with its line measured elsewhere: refused, saying where and how to go on.
    other = {**line, "host": {**line["host"], "cpu": {**line["host"]["cpu"], "name": "Some Other CPU"}}}
    (out / "results.jsonl").write_text(json.dumps(other) + "\n")
    assert _bench(data, out, "--configs", "linear", "--seeds", "1") == 2
    err = capsys.readouterr().err
    assert "another machine (1 on Some Other CPU" in err and "--allow-other-cpu" in err and "Traceback" not in err
    assert len(read_results(str(out))) == 1
    assert _bench(data, out, "--configs", "linear", "--seeds", "1", "--allow-other-cpu") == 0
    assert len(read_results(str(out))) == 2
    # Lines from before the record (no host.cpu) are not judged.
    old = {**line, "seed": 2, "host": {"cpus": 2, "platform": "Linux"}}
    (out / "results.jsonl").write_text(json.dumps(old) + "\n")
    assert _bench(data, out, "--configs", "linear", "--seeds", "0") == 0
    assert main(["bench", "report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert f"CPU: {host.describe(host.machine_fingerprint())} (1 runs); 1 runs from before the harness recorded " \
           "the CPU." in report


def test_a_bf16_profile_on_a_cpu_without_native_bf16_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(host, "machine_fingerprint", lambda: dict(AVX2))
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical",))
    assert _bench(data, out, "--configs", "tiny", "--set", "env.precision=bf16-mixed") == 2
    err = capsys.readouterr().err
    assert "emulated" in err and "env.precision=32-true" in err
    assert not (out / "results.jsonl").exists()
    assert _bench(data, out, "--configs", "linear", "--set", "env.precision=bf16-mixed") == 0  # a peer alone


def test_a_folder_refuses_runs_with_other_overrides_or_time_limits(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    _write_set(str(data), kinds=("numerical",))
    args = ["--configs", "tiny,linear", "--set", "optim.max_epochs=1", "--time-limit", "30"]
    assert _bench(data, out, *args) == 0
    # Another --set for a new seed: its runs would sit beside the first ones, made otherwise.
    assert _bench(data, out, "--configs", "tiny", "--seeds", "1", "--set", "optim.max_epochs=2", "--time-limit",
                  "30") == 2
    err = capsys.readouterr().err
    assert "1 run(s) with mmtricks overrides" in err and "--allow-other-settings" in err
    assert '"optim.max_epochs": 1' in err and '"optim.max_epochs": 2' in err  # theirs, and this bench's
    assert _bench(data, out, "--configs", "linear", "--seeds", "1", "--set", "optim.max_epochs=1",
                  "--time-limit", "60") == 2  # another limit on the same data set
    assert "syn time limit 30 s (this bench: 60 s)" in capsys.readouterr().err
    assert len(read_results(str(out))) == 2
    assert _bench(data, out, *args) == 0  # the same settings again: nothing left to run, nothing refused
    assert _bench(data, out, "--configs", "linear", "--seeds", "2", "--time-limit", "30") == 0  # a peer alone
    assert _bench(data, out, "--configs", "linear", "--seeds", "1", "--time-limit", "60",
                  "--allow-other-settings") == 0
    assert len(read_results(str(out))) == 4
