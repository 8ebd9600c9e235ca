"""Typed configuration: dataclass defaults, named presets, dotted overrides.

``resolve(preset, overrides)`` is the one way a config is made: defaults, then the
preset's dotted dict, then the user's overrides (a dict or ``["a.b=v", ...]`` strings
from the CLI). Unknown keys and ill-typed values raise :class:`ConfigError` with the
closest valid key.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError, did_you_mean


@dataclass
class DataConfig:
    """How columns are turned into tensors."""

    text_max_length: int = 128  # tokens per row, all text columns together (the cap when auto_input_size)
    image_size: typing.Optional[int] = None  # pixels per side; None: from the data (auto_input_size) or the encoder's
    # True: sizes from the training data (data/input_sizes.py): image_size=None becomes the training images'
    # median short side (a multiple of 32, 64 .. the encoder's native size), and the tokens per row the 95th
    # percentile of the training rows (a multiple of 8, 8 .. text_max_length). False: image_size or the
    # encoder's native size, and text_max_length tokens.
    auto_input_size: bool = True
    image_separator: str = ";"  # several paths in one cell: the first is used
    categorical_max_levels: int = 2000  # rarer levels fall into the unknown bucket
    valid_fraction: typing.Optional[float] = None  # None: SPEC rule from the row count
    max_train_rows: typing.Optional[int] = None  # subsample train (stratified) when set
    allow_missing_images: bool = False  # an image file that does not exist counts as a missing image
    modality_dropout: float = 0.0  # training only: each column of a row dropped with this probability
    group_column: typing.Optional[str] = None  # rows sharing a value stay on one side of the validation split
    group_duplicate_text: bool = True  # no group_column: rows with identical text stay on one side
    # 'categorical', 'numerical' or both (comma-separated): those columns go to the text encoder instead,
    # each cell rendered with text_template ({col}: the column name, {value}: the cell; numbers with 3 decimals)
    tabular_to_text: str = ""
    text_template: str = "{col}: {value}"  # also '{col} is {value}' or '{value} & ', or your own with {value}

    def tabular_kinds_as_text(self) -> tuple:
        """The kinds named by ``tabular_to_text``, in a fixed order."""
        named = {k.strip() for k in self.tabular_to_text.split(",") if k.strip()}
        return tuple(k for k in ("categorical", "numerical") if k in named)


@dataclass
class TabularConfig:
    """Encoder of numerical and categorical columns (one encoder for all of them)."""

    encoder: str = "ft_transformer"  # see mmtricks.models.registry.list_encoders("tabular")
    token_dim: int = 192
    n_blocks: int = 3
    n_heads: int = 8
    attention_dropout: float = 0.2
    ffn_dropout: float = 0.1
    mlp_hidden: int = 128  # width of the 'mlp' tabular encoder
    learnable_missing: bool = False  # a trainable token per numerical feature stands in for a missing value


@dataclass
class TextConfig:
    """Hugging Face text encoder."""

    encoder: str = "hf_text"  # 'hf_text', or 'clip_text' (a CLIP text tower; preset lf_aligned)
    backbone: str = "minilm-l6"  # zoo name, hub id or local folder
    pretrained: bool = True
    pooling: str = "mean"  # 'mean' or 'cls'
    tiny: bool = False  # small random transformer of the backbone's tokenizer (tests)
    trust_remote_code: bool = False
    learnable_missing: bool = False  # a trainable vector stands in for a row without any text


@dataclass
class ImageConfig:
    """timm image encoder."""

    encoder: str = "timm_image"  # 'timm_image', or 'clip_image' (a CLIP vision tower; preset lf_aligned)
    backbone: str = "efficientnet-lite0"  # zoo name, timm name, 'timmname@file' or folder
    pretrained: bool = True
    learnable_missing: bool = False  # a trainable vector stands in for a missing image


@dataclass
class FusionConfig:
    """How the encoders' outputs become one vector (models/fusion/; README "Fusions")."""

    name: str = "mlp"  # 'mlp' (LF-MLP), 'transformer' (LF-Transformer), 'sequential' (LF-SF), 'early', 'llm'
    adapter_dim: int = 128  # common width every encoder is projected to
    hidden: int = 128  # mlp: width of the fusion MLP
    dropout: float = 0.1
    n_blocks: int = 3  # transformer, early: blocks of the fusion transformer
    n_heads: int = 8  # transformer, sequential, early: attention heads (lowered to a divisor of the width)
    order: str = "tabular,text,image"  # sequential: the order the encoders run in
    backbone: typing.Optional[str] = None  # early: a pretrained HF text model's layers as the shared transformer
    max_tokens: int = 1024  # early (own transformer): positions, i.e. tokens a row at most
    llm: str = "smollm2-135m"  # llm: the decoder LLM (zoo name, 'tiny-llama', hub id, folder or .gguf file)
    lora_rank: int = 3  # llm: LoRA rank of the adapters
    lora_targets: str = "q_proj,k_proj,v_proj"  # llm: the LLM's modules that get adapters
    llm_tokens: str = "sequence"  # llm: 'sequence' (every encoder token) or 'pooled' (one per encoder output)


@dataclass
class OptimConfig:
    """Optimisation and the basic tricks (SPEC section 3, 'Basic')."""

    lr: float = 1e-4
    head_lr_mult: float = 10.0  # lr multiplier of the parts trained from scratch (tabular, fusion, head)
    weight_decay: float = 1e-3
    batch_size: int = 128  # effective batch; accumulation makes it from micro batches
    micro_batch_size: typing.Optional[int] = None  # None: for the device (train/loop.py, for_device): 32 on a CPU
    min_steps: int = 128  # step floor: the effective batch shrinks (toward one micro batch) so a fit makes this many
    max_epochs: int = 20
    max_steps: typing.Optional[int] = None  # pins the horizon in optimizer steps (e.g. fit_info['plan']['horizon'])
    class_weights: str = "none"  # 'none' or 'balanced' (cross-entropy weights inverse to class frequency)
    recover_collapse: bool = True  # a fit no better than the constant predictor is retried once (train/diagnose.py)
    val_checks_per_epoch: int = 2
    patience: int = 10  # validations without improvement before stopping
    top_k: int = 3  # checkpoints kept on disk
    soup: str = "greedy"  # 'greedy', 'uniform' or 'best'
    grad_clip: typing.Optional[float] = 1.0  # global norm; None: off
    warmup_fraction: float = 0.1  # 0: no warmup
    schedule: str = "cosine"  # 'cosine' (to zero) or 'constant'
    layer_decay: float = 0.9  # 1.0: off


@dataclass
class EnvConfig:
    """Where and how training runs."""

    accelerator: str = "auto"  # 'auto', 'cpu', 'cuda', 'gpu', 'mps'
    devices: str = "auto"  # 'auto', a count like '2', or a list like '0,1'
    strategy: str = "auto"  # Fabric strategy: 'auto', 'ddp', 'fsdp' ...
    precision: str = "auto"  # 'auto': bf16-mixed/16-mixed on GPU, bf16-mixed on CPUs with native bf16, else 32-true
    num_workers: typing.Optional[int] = None  # DataLoader workers; None: for the device (0 on a CPU, see for_device)
    eval_batch_size: int = 64
    val_cache_mb: int = 512  # validation batches kept after the first pass, up to this size; 0: none
    # Training images decoded and resized once per fit, kept as uint8 in memory up to this size and the rest
    # on disk (a temporary folder removed after the fit); 0: off, decoded every epoch (data/image_cache.py)
    image_cache_mb: int = 1024


@dataclass
class TricksConfig:
    """Training hooks (train/tricks/hooks.py): alignment losses, augmentation; README "Training hooks"."""

    # comma-separated hook names, called in this order: align_kl, align_infonce, manifold_mixup, input_aug, lemda
    hooks: str = ""
    align_kl_weight: float = 1.0  # align_kl: weight of the positive-only KL term
    align_infonce_weight: float = 1.0  # align_infonce: weight of the symmetric InfoNCE term
    align_temperature: float = 0.1  # align_infonce: temperature of the cosine similarities
    mixup_alpha: float = 2.0  # manifold_mixup: lambda ~ Beta(alpha, alpha)
    aug_numeric_noise: float = 0.0  # input_aug: Gaussian noise (std, on standardised numbers); 0: off
    lemda_layers: int = 6  # lemda: linear layers of the augmenter (half encode, half decode)
    lemda_latent: int = 8  # lemda: latent width of the augmenter
    lemda_lr: float = 1e-4  # lemda: the augmenter's Adam
    lemda_wd: float = 1e-5
    lemda_adv_scale: float = 1e-4  # lemda: scale of the reversed task gradient the augmenter gets
    lemda_kl_weight: float = 0.1
    lemda_mse_weight: float = 0.1
    lemda_consistency_weight: float = 0.01
    lemda_confidence: float = 0.5  # lemda: consistency only on rows predicted with more confidence than this


@dataclass
class EnsembleConfig:
    """The model pool and ensemble selection (``ensemble/``); used when ``members`` is set."""

    members: str = ""  # 'pool' (ensemble/pool.py POOL), or comma-separated entries/preset names; '': one network
    method: str = "caruana"  # 'caruana', 'sequential', 'uniform' or 'best' (ensemble/selection.py)
    rounds: int = 50  # Caruana's selection rounds
    weights_split: str = "validation"  # 'validation', or 'holdout': half the validation split, set aside for weights
    refit_full: bool = False  # after the weights: refit each chosen member on train + validation (README)
    executor: str = "local"  # 'local' (one member after another) or 'ray' (network members in parallel)
    ray_address: typing.Optional[str] = None  # a running Ray cluster; None: a local loopback-only Ray
    cpus_per_member: int = 1  # Ray: CPUs (and torch threads) each network member's task asks for
    gpus_per_member: float = 0.0  # Ray: GPUs each network member's task asks for


@dataclass
class MMConfig:
    """The whole resolved configuration, saved with every model."""

    data: DataConfig = field(default_factory=DataConfig)
    tabular: TabularConfig = field(default_factory=TabularConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    tricks: TricksConfig = field(default_factory=TricksConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MMConfig":
        """Rebuild from :meth:`to_dict` output, strictly (unknown keys are errors).

        Keys that older versions wrote and this one retired are dropped (``RETIRED_KEYS``).
        """
        cfg = cls()
        apply_overrides(cfg, {k: v for k, v in flatten(data).items() if k not in RETIRED_KEYS})
        return cfg


# Keys older saved models hold that no longer exist: what replaced them.
RETIRED_KEYS = {"optim.min_steps_per_epoch": "optim.min_steps"}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def all_keys(cfg: MMConfig | None = None) -> list[str]:
    """Every valid dotted key, e.g. ``optim.lr``."""
    return sorted(flatten((cfg or MMConfig()).to_dict()))


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn ``value`` (possibly a CLI string) into the field's declared type."""
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if isinstance(value, str):
        low = value.strip().lower()
        if optional and low in {"none", "null", ""}:
            return None
        if base is bool:
            if low in {"true", "1", "yes", "on"}:
                return True
            if low in {"false", "0", "no", "off"}:
                return False
        elif base is int:
            try:
                return int(value)
            except ValueError:
                pass
        elif base is float:
            try:
                return float(value)
            except ValueError:
                pass
        elif base is str:
            return value
    else:
        if value is None and optional:
            return None
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base in (bool, str) and isinstance(value, base):
            return value
    raise ConfigError(
        f"The option '{key}' expects {getattr(base, '__name__', base)}"
        f"{' or None' if optional else ''}. Got {value!r}."
    )


def apply_overrides(cfg: MMConfig, overrides: Mapping[str, Any]) -> MMConfig:
    """Set dotted keys on ``cfg`` in place; unknown keys raise with a suggestion."""
    valid = all_keys()
    for key, value in overrides.items():
        parts = key.split(".")
        if key not in valid:
            hint = (f" It was replaced by '{RETIRED_KEYS[key]}'." if key in RETIRED_KEYS
                    else did_you_mean(key, valid))
            raise ConfigError(f"Unknown config key '{key}'.{hint} 'mmtricks config' lists every key.")
        section = getattr(cfg, parts[0])
        hints = typing.get_type_hints(type(section))
        setattr(section, parts[1], _coerce(key, value, hints[parts[1]]))
    return cfg


def parse_pairs(items: typing.Iterable[str], form: str = "section.key=value") -> dict[str, str]:
    """``['a=1', 'b=x']`` -> ``{'a': '1', 'b': 'x'}``; an item without '=' is a ConfigError."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Expected '{form}'. Got {item!r}.")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_overrides(items: typing.Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept a dict, or CLI strings ``'a.b=v'``; return a flat dict."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return flatten(items)
    return parse_pairs(items)


def resolve(preset: str = "default", overrides: Any = None) -> MMConfig:
    """Defaults <- preset <- overrides, strictly checked."""
    from .presets import preset_overrides

    cfg = MMConfig()
    apply_overrides(cfg, preset_overrides(preset))
    apply_overrides(cfg, parse_overrides(overrides))
    _check_choices(cfg)
    return cfg


def _check_choices(cfg: MMConfig) -> None:
    from .ensemble.selection import METHODS
    from .errors import one_of

    checks = {
        "optim.soup": (cfg.optim.soup, {"greedy", "uniform", "best"}),
        "optim.class_weights": (cfg.optim.class_weights, {"none", "balanced"}),
        "ensemble.method": (cfg.ensemble.method, set(METHODS)),
        "ensemble.weights_split": (cfg.ensemble.weights_split, {"validation", "holdout"}),
        "ensemble.executor": (cfg.ensemble.executor, {"local", "ray"}),
        "optim.schedule": (cfg.optim.schedule, {"cosine", "constant"}),
        "text.pooling": (cfg.text.pooling, {"mean", "cls"}),
        "fusion.llm_tokens": (cfg.fusion.llm_tokens, {"sequence", "pooled"}),
    }
    for key, (value, choices) in checks.items():
        if value not in choices:
            raise ConfigError(one_of(key, value, choices))
    for kind in (k.strip() for k in cfg.data.tabular_to_text.split(",") if k.strip()):
        if kind not in ("categorical", "numerical"):
            raise ConfigError(one_of("data.tabular_to_text", kind, ["categorical", "numerical"]))
    if "{value}" not in cfg.data.text_template:
        raise ConfigError(f"data.text_template must contain '{{value}}' (where the cell goes), e.g. "
                          f"'{{col}}: {{value}}'. Got {cfg.data.text_template!r}.")
    from .models.registry import list_encoders, list_fusions  # the registries (imports torch)
    from .train.tricks.hooks import list_hooks

    for name in (h.strip() for h in cfg.tricks.hooks.split(",") if h.strip()):
        if name not in list_hooks():
            raise ConfigError(one_of("tricks.hooks", name, list_hooks()))

    for key, value, names in (("fusion.name", cfg.fusion.name, list_fusions()),
                              ("text.encoder", cfg.text.encoder, list_encoders("text")),
                              ("image.encoder", cfg.image.encoder, list_encoders("image")),
                              ("tabular.encoder", cfg.tabular.encoder, list_encoders("tabular"))):
        if value not in names:
            raise ConfigError(one_of(key, value, names))
    ranges = {
        "optim.lr": cfg.optim.lr > 0,
        "optim.batch_size": cfg.optim.batch_size >= 1,
        "optim.micro_batch_size": cfg.optim.micro_batch_size is None or cfg.optim.micro_batch_size >= 1,
        "env.num_workers": cfg.env.num_workers is None or cfg.env.num_workers >= 0,
        "optim.max_epochs": cfg.optim.max_epochs >= 1,
        "optim.min_steps": cfg.optim.min_steps >= 0,
        "ensemble.rounds": cfg.ensemble.rounds >= 1,
        "ensemble.cpus_per_member": cfg.ensemble.cpus_per_member >= 1,
        "ensemble.gpus_per_member": cfg.ensemble.gpus_per_member >= 0,
        "optim.max_steps": cfg.optim.max_steps is None or cfg.optim.max_steps >= 1,
        "optim.top_k": cfg.optim.top_k >= 1,
        "optim.warmup_fraction": 0.0 <= cfg.optim.warmup_fraction < 1.0,
        "optim.layer_decay": 0.0 < cfg.optim.layer_decay <= 1.0,
        "optim.val_checks_per_epoch": cfg.optim.val_checks_per_epoch >= 1,
        "env.val_cache_mb": cfg.env.val_cache_mb >= 0,
        "env.image_cache_mb": cfg.env.image_cache_mb >= 0,
        "data.image_size": cfg.data.image_size is None or cfg.data.image_size >= 1,
        "data.text_max_length": cfg.data.text_max_length >= 8,
        "data.modality_dropout": 0.0 <= cfg.data.modality_dropout < 1.0,
        "fusion.n_blocks": cfg.fusion.n_blocks >= 1,
        "fusion.n_heads": cfg.fusion.n_heads >= 1,
        "fusion.max_tokens": cfg.fusion.max_tokens >= 2,
        "fusion.lora_rank": cfg.fusion.lora_rank >= 1,
        "tricks.align_temperature": cfg.tricks.align_temperature > 0,
        "tricks.mixup_alpha": cfg.tricks.mixup_alpha > 0,
        "tricks.aug_numeric_noise": cfg.tricks.aug_numeric_noise >= 0,
        "tricks.lemda_layers": cfg.tricks.lemda_layers >= 2,
        "tricks.lemda_latent": cfg.tricks.lemda_latent >= 1,
    }
    for key, ok in ranges.items():
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"The option '{key}' is out of range: {getattr(getattr(cfg, section), name)!r}.")
    if cfg.optim.grad_clip is not None and cfg.optim.grad_clip <= 0:
        raise ConfigError(f"'optim.grad_clip' must be positive or None. Got {cfg.optim.grad_clip!r}.")
