"""Which machine a bench runs on, and whether its results may join those already in OUT.

Every result line's ``host`` holds ``cpu``: the processor's name and instruction sets as
torch reports them (``torch.cpu.get_capabilities()``), whether it has native bf16, and the
GPU's name when one is visible. Time-limited fits make as many steps as the machine affords,
so their scores belong to the machine they ran on. Two checks before runs are added to a
folder (the runner adds a third, on settings: ``Bench.check_settings``):

1. **Precision the CPU can run.** A profile or ``--set`` that asks presets for bf16 on a CPU
   without native bf16 (``avx512_bf16`` or ``amx_bf16``) and no GPU is refused: bf16 is then
   emulated, many times slower than fp32 (``scripts/step_cost.py`` on an AVX2-only CPU: a
   32-row cloth ``baseline_plus`` step 74 s in bf16, 3.9 s in fp32), and every time-limited
   fit would be starved of steps.
2. **One machine per results folder.** Earlier ``ok`` lines in ``OUT/results.jsonl`` measured on
   another CPU (or GPU) refuse the bench, unless ``allow_other_cpu`` (``--allow-other-cpu``) says
   to mix them knowingly. Lines from before this record existed carry no ``cpu`` and are not
   judged.
"""
from __future__ import annotations

import platform
from collections import Counter
from typing import Any, Iterable, Optional

from ..errors import ConfigError

BF16_PRECISIONS = ("bf16-mixed", "bf16-true", "bf16")


def machine_fingerprint() -> dict[str, Any]:
    """``{"name", "architecture", "isa", "native_bf16", "gpu"}`` of this machine (imports torch)."""
    import torch

    from ..train.loop import cpu_native_bf16

    caps_fn = getattr(torch.cpu, "get_capabilities", None)
    caps = caps_fn() if caps_fn is not None else {}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"name": str(caps.get("cpu_name") or platform.processor() or "unknown").strip(),
            "architecture": str(caps.get("architecture") or platform.machine()),
            "isa": sorted(k for k, v in caps.items() if v is True),
            "native_bf16": cpu_native_bf16(), "gpu": gpu}


def describe(cpu: dict[str, Any]) -> str:
    """'AMD EPYC (x86_64; native bf16: no; avx2, no avx512_f)' for messages and the report."""
    isa = set(cpu.get("isa") or [])
    marks = ", ".join(f"{'' if flag in isa else 'no '}{flag}" for flag in ("avx2", "avx512_f", "avx512_bf16",
                                                                          "amx_bf16"))
    gpu = f"; GPU {cpu['gpu']}" if cpu.get("gpu") else ""
    return (f"{cpu.get('name', 'unknown')} ({cpu.get('architecture', '?')}; native bf16: "
            f"{'yes' if cpu.get('native_bf16') else 'no'}; {marks}{gpu})")


def same_machine(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same processor name, architecture, instruction sets and GPU."""
    keys = ("name", "architecture", "isa", "gpu")
    return all(a.get(k) == b.get(k) for k in keys)


def check_precision(overrides: dict[str, Any], has_presets: bool, cpu: dict[str, Any]) -> None:
    """Refuse bf16 for presets on a CPU that would emulate it (check 1 of the module doc)."""
    precision = str(overrides.get("env.precision") or "")
    accelerator = str(overrides.get("env.accelerator") or "auto")
    on_gpu = cpu.get("gpu") and accelerator in ("auto", "cuda", "gpu")
    if not has_presets or precision not in BF16_PRECISIONS or on_gpu or cpu.get("native_bf16"):
        return
    raise ConfigError(
        f"env.precision={precision} (from the profile or --set) would train every mmtricks preset in emulated "
        f"bf16 on this CPU, {describe(cpu)}: many times slower than fp32, so time-limited fits would make a "
        f"fraction of their steps. Run this profile on a CPU with avx512_bf16 or amx_bf16 (or a GPU), or pass "
        f"--set env.precision=32-true (or auto) with a --out folder of its own.")


def check_same_machine(lines: Iterable[dict[str, Any]], cpu: dict[str, Any], out_dir: str,
                       allow_other: bool = False) -> None:
    """Refuse to add results to a folder measured on another machine (check 2 of the module doc)."""
    if allow_other:
        return
    others: Counter = Counter()
    for line in lines:
        theirs: Optional[dict[str, Any]] = (line.get("host") or {}).get("cpu")
        if line.get("status") == "ok" and isinstance(theirs, dict) and not same_machine(theirs, cpu):
            others[describe(theirs)] += 1
    if others:
        said = "; ".join(f"{n} on {what}" for what, n in others.items())
        raise ConfigError(
            f"{out_dir} holds results measured on another machine ({said}); this one is {describe(cpu)}. "
            f"Time-limited fits do not compare across machines: pass a new --out folder, or --allow-other-cpu "
            f"to add these results anyway.")
