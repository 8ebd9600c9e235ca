"""The model pool: one member per pool entry that fits the data, trained on one shared split.

Members differ only in what they are (a network preset, LightGBM, the linear model);
they share the schema, the validation split and the time limit. The time plan:

1. Classic members first (seconds each): LightGBM, the linear model, then LightGBM on
   frozen text/image embeddings too (``lightgbm_embed``), each capped at ``CLASSIC_SHARE``
   of the time left. The embeddings are one forward pass of the pretrained encoders over
   the training and validation rows, made once and shared (``ensemble/embeddings.py``);
   under a time limit they are skipped, logged, when they would take more than
   ``EMBED_SHARE`` of the time left (timed on a batch first).
2. Network members, in pool order, split what is left equally. Under a time limit each
   must afford the step floor (``optim.min_steps``): a member whose first timed steps show
   it cannot do so in its share stops at once (``FloorUnreachable``), and the pool keeps
   only as many network members as can each reach the floor (its steps at the timed cost
   plus a 20% margin for validation and soup), dropping the last ones in pool order
   (logged); where the margin leaves none but the bare steps fit, the first one left is
   tried once with all the time left and its own step plan decides. A member is never
   half-trained into the ensemble.
3. Ensemble selection on the members' validation outputs (``ensemble/selection.py``).

Entries that need what the data lacks are skipped with a logged reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..train.plan import FloorUnreachable

CLASSIC_SHARE = 0.1  # at most this share of the time left goes to each classic member
SELECTION_RESERVE = 5.0  # seconds kept for ensemble selection at the end


@dataclass(frozen=True)
class PoolEntry:
    """One member of the pool: a network preset, or a classic learner."""

    name: str
    kind: str  # 'network', 'lightgbm' or 'linear'
    preset: Optional[str] = None


# The pool of preset 'best', in training (and priority) order; grows as trick presets land.
POOL = (
    PoolEntry("lightgbm", "lightgbm"),
    PoolEntry("linear", "linear"),
    PoolEntry("lightgbm_embed", "lightgbm_embed"),
    PoolEntry("baseline_plus", "network", "baseline_plus"),
    PoolEntry("learnable_embed", "network", "learnable_embed"),
    PoolEntry("modality_dropout", "network", "modality_dropout"),
    PoolEntry("lf_transformer", "network", "lf_transformer"),
    PoolEntry("lf_sf", "network", "lf_sf"),
    PoolEntry("convert_categorical", "network", "convert_categorical"),
    PoolEntry("convert_numerical", "network", "convert_numerical"),
    PoolEntry("early_fusion", "network", "early_fusion"),
    PoolEntry("lf_aligned", "network", "lf_aligned"),
    PoolEntry("lf_llm", "network", "lf_llm"),
)
CLASSIC_KINDS = ("lightgbm", "linear", "lightgbm_embed")


def pool_entries(names: list[str]) -> list[PoolEntry]:
    """Entries for names: 'pool' (all of POOL), pool names, or any preset name (a network member)."""
    from ..errors import ConfigError, did_you_mean
    from ..presets import list_presets

    known = {e.name: e for e in POOL}
    out = []
    for name in names:
        if name == "pool":
            out.extend(e for e in POOL if e not in out)
        elif name in known:
            out.append(known[name])
        elif name in CLASSIC_KINDS:
            out.append(PoolEntry(name, name))
        elif name in list_presets():
            out.append(PoolEntry(name, "network", name))
        else:
            choices = sorted(set(known) | set(CLASSIC_KINDS) | set(list_presets()))
            raise ConfigError(f"Unknown pool member '{name}'.{did_you_mean(name, choices)} "
                              f"Choose from {choices}.")
    return out


def skip_reason(entry: PoolEntry, schema, train_df, overrides: Optional[dict] = None) -> Optional[str]:
    """Why ``entry`` does not fit this data (None when it does); ``overrides``: the user's, which
    apply to every network member (a CLIP checkpoint or LLM named there is the one checked)."""
    import importlib.util

    from ..config import resolve

    modalities = schema.modalities
    if entry.kind in ("lightgbm", "lightgbm_embed") and importlib.util.find_spec("lightgbm") is None:
        return "lightgbm is not installed (pip install 'mmtricks[pool]')"
    if entry.kind == "lightgbm_embed" and not ({"text", "image"} & set(modalities)):
        return "there is no text or image column to embed (plain lightgbm covers the rest)"
    if entry.kind in ("lightgbm", "linear") and not ({"tabular", "text"} & set(modalities)):
        return "it reads tabular and text columns; the table has only images"
    if entry.preset in ("modality_dropout", "modality_dropout_learnable") and len(modalities) < 2:
        return "dropping a modality needs at least two"
    if entry.preset == "convert_categorical" and not schema.columns("categorical"):
        return "the table has no categorical column to render as text"
    if entry.preset == "convert_numerical" and not schema.columns("numerical"):
        return "the table has no numerical column to render as text"
    if entry.preset in ("lf_transformer", "lf_sf", "early_fusion") and len(modalities) < 2:
        return "fusing needs at least two modalities"
    if entry.preset == "lf_aligned":
        if not {"text", "image"} <= set(modalities):
            return "CLIP's aligned towers need both text and image columns"
        return clip_unavailable(overrides)
    if entry.preset == "lf_llm":
        if importlib.util.find_spec("peft") is None:
            return "peft is not installed (pip install 'mmtricks[llm]')"
        from ..errors import BackboneError
        from ..zoo import resolve_llm

        try:
            resolve_llm(resolve("lf_llm", overrides).fusion.llm)
        except BackboneError as exc:
            return str(exc)
    if entry.preset == "learnable_embed":
        features = list(schema.column_kinds)
        if not train_df[features].isna().any().any():
            return "no training cell is missing, so learnable stand-ins would never be used"
    return None


def clip_unavailable(overrides: Optional[dict] = None) -> Optional[str]:
    """Why lf_aligned's CLIP checkpoints (text and image towers, with ``overrides``) cannot be
    read here (None when their configs can be)."""
    from ..config import resolve
    from ..errors import BackboneError
    from ..models.encoders.clip import check_checkpoint

    cfg = resolve("lf_aligned", overrides)
    try:
        for name in dict.fromkeys((cfg.text.backbone, cfg.image.backbone)):
            check_checkpoint(name)
    except BackboneError as exc:
        return f"no CLIP weights: {exc}"
    return None


@dataclass
class Member:
    """A fitted pool member: ``outputs(df, base_dir)`` in metric units, and its facts."""

    name: str
    kind: str
    model: object  # a single-network MultimodalPredictor, or a classic member
    val_outputs: np.ndarray
    val_score: float
    fit_seconds: float
    weight: float = 0.0
    info: Optional[dict] = None

    def outputs(self, df, base_dir=None) -> np.ndarray:
        if self.kind == "network":
            return self.model.predict_outputs(df, base_dir)
        return self.model.outputs(df, base_dir)


def fit_pool(entries: list[PoolEntry], *, schema, train_df, val_df, y_train, y_val, metric, seed: int,
             deadline: Optional[float], fit_network: Callable[[PoolEntry, Optional[float]], Member],
             log: Callable[[str], None], threads: int = 0,
             fit_parallel: Optional[Callable[[list[PoolEntry]], list]] = None,
             train_weights: Optional[np.ndarray] = None, val_weights: Optional[np.ndarray] = None,
             make_embedder: Optional[Callable[[], object]] = None, base_dir: Optional[str] = None,
             val_base: Optional[str] = None, overrides: Optional[dict] = None) -> list[Member]:
    """Train every entry that fits the data; see the module doc for the time plan.

    ``fit_parallel(entries)``, when given, trains the network members at once (Ray), each
    with the whole time left; it returns a Member or a FloorUnreachable per entry.
    ``make_embedder()`` builds the :class:`~mmtricks.ensemble.embeddings.FrozenEmbedder`
    for members that read frozen embeddings; ``base_dir``/``val_base``: where the training
    and validation rows' relative image paths resolve; ``overrides``: the network members'
    (for the skip rules).
    """
    from .classic import CLASSIC_MEMBERS
    from .embeddings import EMBEDDING_KINDS, shared_embeddings

    def left() -> Optional[float]:
        return None if deadline is None else deadline - time.time() - SELECTION_RESERVE

    usable = []
    for entry in entries:
        reason = skip_reason(entry, schema, train_df, overrides)
        if reason:
            log(f"pool: skipping {entry.name}: {reason}.")
        else:
            usable.append(entry)
    members: list[Member] = []
    shared = None
    if make_embedder is not None and any(e.kind in EMBEDDING_KINDS for e in usable):
        shared = shared_embeddings(make_embedder, train_df, val_df, base_dir, val_base, left(), log)
    if shared is None:
        usable = [e for e in usable if e.kind not in EMBEDDING_KINDS]
    for entry in [e for e in usable if e.kind in CLASSIC_KINDS]:
        start = time.time()
        budget = None if deadline is None else max(1.0, CLASSIC_SHARE * left())
        kwargs = {"threads": threads} if entry.kind != "linear" else {}
        extra = {"embeddings": shared, "base_dir": base_dir} if entry.kind in EMBEDDING_KINDS else {}
        model = CLASSIC_MEMBERS[entry.kind](schema, seed=seed, **kwargs).fit(
            train_df, y_train, val_df, y_val, time_budget=budget, sample_weight=train_weights, val_weight=val_weights,
            **extra)
        out = model.outputs(val_df, val_base, **({"embedded": shared.val} if extra else {}))
        members.append(Member(entry.name, entry.kind, model, out, float(metric.fn(y_val, out, val_weights)),
                              round(time.time() - start, 2)))
        log(f"pool: {entry.name}: validation {metric.name} {members[-1].val_score:.4f} "
            f"({members[-1].fit_seconds:.1f} s)")
    networks = [e for e in usable if e.kind == "network"]
    if fit_parallel is not None and networks:
        for entry, out in zip(networks, fit_parallel(networks)):
            if isinstance(out, FloorUnreachable):
                log(f"pool: dropping {entry.name}: {out}.")
            else:
                members.append(out)
                log(f"pool: {entry.name}: validation {metric.name} {out.val_score:.4f} ({out.fit_seconds:.1f} s)")
        networks = []
    i = 0
    while i < len(networks):
        entry = networks[i]
        share = None if deadline is None else left() / (len(networks) - i)
        if share is not None and share <= 0:
            log(f"pool: no time left for {[e.name for e in networks[i:]]}; dropped.")
            break
        try:
            member = fit_network(entry, share)
        except FloorUnreachable as exc:
            # this share was too small, so fewer members than now (timing noise cannot keep the count)
            floor_cost = exc.seconds_per_step * exc.min_steps
            fits = min(int(left() // (floor_cost * 1.2)), len(networks) - i - 1)
            if fits < 1 and len(networks) - i > 1 and left() >= floor_cost:
                fits = 1  # no room with the margin, room for the bare steps: it tries alone, its plan decides
            dropped = networks[i + max(fits, 1):] if fits >= 1 else networks[i:]
            log(f"pool: {exc}; dropping {[e.name for e in dropped]} so each network member left reaches "
                f"{exc.min_steps} steps.")
            networks = networks[:len(networks) - len(dropped)]
            if fits < 1:
                break
            continue
        members.append(member)
        log(f"pool: {entry.name}: validation {metric.name} {member.val_score:.4f} ({member.fit_seconds:.1f} s)")
        i += 1
    if not members:
        from ..errors import SchemaError

        raise SchemaError("No pool member could be trained: every entry was skipped or ran out of time. "
                          "Raise time_limit or name other members.")
    return members


def weigh(members: list[Member], y_val: np.ndarray, metric, method: str, rounds: int = 50,
          val_weights: Optional[np.ndarray] = None) -> tuple[float, dict[str, list[float]]]:
    """Set each member's ensemble weight by ``method``; return the ensemble's validation score and
    every method's weights on the same rows (members in order), for comparison."""
    from .selection import METHODS, blend, select

    outputs = [m.val_outputs for m in members]
    alternatives = {name: [float(w) for w in select(name, outputs, y_val, metric, rounds, val_weights)]
                    for name in dict.fromkeys((method, *METHODS))}
    for m, w in zip(members, alternatives[method]):
        m.weight = w
    return float(metric.fn(y_val, blend(outputs, alternatives[method]), val_weights)), alternatives
