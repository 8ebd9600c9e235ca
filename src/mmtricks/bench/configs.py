"""Config names a bench can run: every mmtricks preset, plus named peers."""
from __future__ import annotations

from ..errors import ConfigError, did_you_mean

PEERS: dict[str, str] = {
    "linear": "scikit-learn: TF-IDF word 1-2-grams + one-hot categories + standardised numbers; "
              "LogisticRegression(C=4) / Ridge(alpha=3); images ignored",
    "autogluon_mm": "AutoGluon MultiModalPredictor, in its own virtualenv (bench/peers/autogluon_run.py)",
    "autogluon_tabular": "AutoGluon TabularPredictor, in its own virtualenv (bench/peers/autogluon_run.py)",
    "autogluon_stack": "AutoGluon TabularPredictor with hyperparameters 'multimodal': its MultiModalPredictor "
                       "stacked with gradient-boosted trees, in its own virtualenv (bench/peers/autogluon_run.py)",
}
# Peer config -> the ``kind`` of bench/peers/autogluon_run.py's request.
AUTOGLUON_KIND = {"autogluon_mm": "multimodal", "autogluon_tabular": "tabular", "autogluon_stack": "stack"}


def config_kind(name: str) -> str:
    """'preset' for an mmtricks preset, 'peer' for a peer."""
    return "peer" if name in PEERS else "preset"


def check_configs(names: list[str]) -> list[str]:
    """Return ``names`` when each is a preset or a peer.

    Raises:
        ConfigError: An unknown name; the message lists the valid presets and peers.
    """
    from ..presets import list_presets

    presets = list_presets()
    valid = presets + sorted(PEERS)
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"Unknown bench config {name!r}.{did_you_mean(name, valid)} Valid configs: mmtricks presets "
                f"{presets}; peers {sorted(PEERS)}."
            )
    if not names:
        raise ConfigError(f"No config given. Valid configs: mmtricks presets {presets}; peers {sorted(PEERS)}.")
    return list(names)
