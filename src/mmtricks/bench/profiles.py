"""Benchmark profiles: how much data, which config overrides and how long each run may fit.

``quick`` fits the whole quick comparison (Baseline, Baseline+ and the peers on the three
shared data sets, 3 seeds) into about 90 minutes on a 2-core CPU: about 2 minutes a run.
``full`` is the reference setting: all the data, default config, 30 minutes a fit, meant
for a GPU machine.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from ..errors import ConfigError, one_of


@dataclass(frozen=True)
class Profile:
    """The settings shared by every run of a bench.

    Attributes:
        name: Profile name, part of each run's resume key.
        max_train_rows: Train rows kept per seed (stratified, seeded; the same rows for
            every config of a seed); None keeps them all. The test split is never subsampled.
        overrides: mmtricks config overrides applied on top of each preset.
        time_limit: Seconds per fit unless ``--time-limit`` is given.
        description: One line for the report.
    """

    name: str
    max_train_rows: Optional[int]
    overrides: dict[str, Any] = field(default_factory=dict)
    time_limit: float = 1800.0
    description: str = ""

    @property
    def text_max_length(self) -> Optional[int]:
        """Token budget per row the profile asks of every config (None: each config's own)."""
        return self.overrides.get("data.text_max_length")

    @property
    def image_size(self) -> Optional[int]:
        """Image side in pixels the profile asks of every config (None: each config's own)."""
        return self.overrides.get("data.image_size")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (stored in every result line)."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        max_train_rows=2000,
        overrides={"data.text_max_length": 64, "data.image_size": 128},
        time_limit=90.0,
        description="2-core CPU: train subsampled to 2000 rows, text 64 tokens, images 128 px, 90 s per fit",
    ),
    "full": Profile(
        name="full",
        max_train_rows=None,
        overrides={},
        time_limit=1800.0,
        description="GPU machine: all train rows, reference config, 1800 s per fit",
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises:
        ConfigError: ``name`` is not a profile.
    """
    if name not in PROFILES:
        raise ConfigError(one_of("profile", name, PROFILES))
    return PROFILES[name]
