"""Named presets: dotted-override dicts applied on top of the dataclass defaults.

A preset may name a ``base`` preset it extends. Each trick issue adds presets here, so
the benchmark harness can run any of them by name.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError, one_of

CLIP_DEFAULT = "openai/clip-vit-base-patch32"  # lf_aligned's checkpoint (override text/image.backbone)

# The basic tricks all off (SPEC section 3, "Baseline").
_BASELINE = {
    "optim.soup": "best",
    "optim.grad_clip": None,
    "optim.warmup_fraction": 0.0,
    "optim.schedule": "constant",
    "optim.layer_decay": 1.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # Baseline+ with the offline zoo backbones: all four basic tricks on.
    "baseline_plus": {},
    "default": {"base": "baseline_plus"},
    "baseline": dict(_BASELINE),
    # One basic trick at a time on top of Baseline (the paper's ablation).
    "baseline+greedy_soup": {"base": "baseline", "optim.soup": "greedy"},
    "baseline+grad_clip": {"base": "baseline", "optim.grad_clip": 1.0},
    "baseline+warmup": {"base": "baseline", "optim.warmup_fraction": 0.1, "optim.schedule": "cosine"},
    "baseline+layer_decay": {"base": "baseline", "optim.layer_decay": 0.9},
    # Missing modalities (SPEC section 3): default imputation is the baseline_plus preset.
    "modality_dropout": {"base": "baseline_plus", "data.modality_dropout": 0.3},
    "learnable_embed": {"base": "baseline_plus", "tabular.learnable_missing": True,
                        "text.learnable_missing": True, "image.learnable_missing": True},
    "modality_dropout_learnable": {"base": "learnable_embed", "data.modality_dropout": 0.3},
    # Fusions (SPEC section 3, "Fusion"; models/fusion/). LF-MLP is the default's.
    "lf_transformer": {"base": "baseline_plus", "fusion.name": "transformer"},
    "lf_sf": {"base": "baseline_plus", "fusion.name": "sequential"},
    "early_fusion": {"base": "baseline_plus", "fusion.name": "early"},
    # SmolLM2-135M (offline GGUF) over every encoder's tokens, LoRA rank 3 on q/k/v (needs the llm extra).
    "lf_llm": {"base": "baseline_plus", "fusion.name": "llm"},
    # CLIP's aligned towers replace both encoders (weights from the hub or a local folder).
    "lf_aligned": {"base": "baseline_plus", "text.encoder": "clip_text", "image.encoder": "clip_image",
                   "text.backbone": CLIP_DEFAULT, "image.backbone": CLIP_DEFAULT},
    # Tabular columns rendered into the text input ("col: value").
    "convert_categorical": {"base": "baseline_plus", "data.tabular_to_text": "categorical"},
    "convert_numerical": {"base": "baseline_plus", "data.tabular_to_text": "numerical"},
    # Training hooks (train/tricks/): cross-modal alignment, feature-level augmentation.
    "align_pos_only": {"base": "baseline_plus", "tricks.hooks": "align_kl"},
    "align_pos_neg": {"base": "baseline_plus", "tricks.hooks": "align_infonce"},
    "manifold_mixup": {"base": "baseline_plus", "tricks.hooks": "manifold_mixup"},
    "input_aug": {"base": "baseline_plus", "tricks.hooks": "input_aug"},
    "lemda": {"base": "baseline_plus", "tricks.hooks": "lemda"},
    # input_aug plus noise on the numbers (sd 0.1 of a standardised feature): the tabular trial
    "input_aug_numeric": {"base": "input_aug", "tricks.aug_numeric_noise": 0.1},
    # The model pool (ensemble/pool.py): every entry that fits the data, then ensemble selection.
    "best": {"base": "baseline_plus", "ensemble.members": "pool"},
    # Small random encoders: for tests and smoke runs, no pretrained weights at all.
    "tiny": {
        "text.pretrained": False,
        "text.tiny": True,
        "image.backbone": "test_efficientnet",
        "image.pretrained": False,
        "data.image_size": 32,
        "data.text_max_length": 32,
        "tabular.token_dim": 16,
        "tabular.n_blocks": 1,
        "tabular.n_heads": 2,
        "fusion.adapter_dim": 16,
        "fusion.hidden": 16,
        "optim.lr": 3e-3,
        "optim.batch_size": 16,
        "optim.micro_batch_size": 16,
        "optim.max_epochs": 2,
        "optim.top_k": 2,
        "env.eval_batch_size": 32,
    },
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def preset_overrides(name: str) -> dict[str, Any]:
    """The flat dotted dict of preset ``name``, its bases applied first."""
    if name not in PRESETS:
        raise ConfigError(one_of("preset", name, PRESETS))
    spec = dict(PRESETS[name])
    base = spec.pop("base", None)
    out = preset_overrides(base) if base else {}
    out.update(spec)
    return out
