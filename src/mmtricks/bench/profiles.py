"""Benchmark profiles: how much data, which config overrides and how long each run may fit.

``quick`` is for smoke runs: the whole quick comparison (Baseline, Baseline+ and the peers
on the three shared data sets, 3 seeds) in about 90 minutes on a 2-core CPU, about 2
minutes a run, with shrunken inputs (64 tokens, 128 px) and 18-50 optimizer steps a fit:
too few to draw conclusions from. ``standard`` is the profile the documented conclusions
on this 2-core CPU come from (sizing below). ``full`` is the reference setting: all the
data, default config, 30 minutes a fit, meant for a GPU machine.

Sizing of ``standard`` (from measured step times on this 2-core CPU; each run's lines record
what it really took):

* **Inputs**: no ``data.image_size`` / ``data.text_max_length`` overrides, so each config
  uses the input sizes the defaults choose for the data, as a user gets them. On the
  shared data that is 224-px images (covid's and ptech's images have a 256-px short side;
  the encoder's native 224 caps it) and per row 128 tokens on cloth and covid (95th
  percentile of the rows 136 and 163, capped by ``data.text_max_length``) and 56 on ptech.
* **Precision**: ``env.precision=bf16-mixed`` (autocast in training and prediction) for
  every mmtricks config, what ``auto`` picks on CPUs with native bf16 (this one has
  avx512_bf16), set explicitly so the profile measures the same on any CPU. The gate that
  made it ``auto``: ``baseline_plus`` rerun in this profile with ``--set
  env.precision=32-true`` (into its own folder; scripts/benchmarks.sh), whose per-data-set
  means did not beat bf16's by more than the seed spread (docs/benchmarks.md). AutoGluon runs as it
  defaults (32-bit on CPU).
* **Rows**: at most 4,000 train rows per seed, the same for every config and peer. covid
  (506) and ptech (750) are used whole; cloth (18,788) is cut to 4,000 (about 3,500 train /
  500 validation after the held-out split), which keeps its preprocessing, validations and
  the soup's evaluations small; the training itself is set by the step floor, below.
* **Step floor**: ``optim.min_steps`` (128 by default). Under a time limit the fit plan
  (``fit_info["plan"]``, train/plan.py) shrinks gradient accumulation toward one 32-row
  micro batch until the limit affords the floor, and rounds the horizon down to a multiple
  of 16 steps (for horizons of 128-255), so a fit reaches the floor (``floor_reached``) when
  the limit affords 128 steps of one micro batch: about 4,100 rows through forward and
  backward, whatever the table's size (8 epochs of covid, 5.5 of ptech). Early stopping
  (10 validations without improvement) may still end a fit below the floor: the fit had
  converged, and the report says which fits stopped that way.
* **Seconds per 32-row step** (validations included). Measured: the first fp32 run of
  ``baseline`` on covid made 7.65 s a step (64 steps in 490 s; a 640-s limit then afforded
  only half the floor), and ``scripts/bf16_check.py --threads 2`` on an idle machine gave
  one 32-row forward+backward of MiniLM-L6 at 128 tokens 2.43 s (fp32) / 1.56 s (bf16) and
  of EfficientNet-Lite0 at 224 px 3.29 s / 2.11 s: 1.55x. Scaled by that: covid 4.9 s a
  step in bf16, ptech (56 tokens) about 3.4 s, cloth (text + tabular, 500-row validations)
  about 2.1 s.
* **Limits**: 128 steps at those times plus about 15% (the first timed steps, which set the
  plan, run slower than later ones) plus 60-80 s of set-up, the last validation and the soup:
  cloth 128 x 2.1 x 1.15 + 80 = 389 s -> **400 s**; ptech 128 x 3.4 x 1.15 + 60 = 560 s ->
  **560 s**; covid 128 x 4.9 x 1.15 + 80 = 801 s -> **800 s** (also for any other data set).
  Slower fits do not reach the floor, and the report lists them (each line's
  ``fit_summary.plan.floor_reached``).
* **Total** (configs baseline, baseline_plus, linear, autogluon_mm, autogluon_tabular;
  3 seeds; covid, ptech, cloth: 45 runs), per data set and seed with limit T: each mmtricks
  preset 0.94 T plus test prediction and start-up (cloth about 70 s for 4,698 test rows,
  covid and ptech about 10 s); autogluon_mm 1.23 T (its worst overrun in the quick profile)
  plus about 30 s; autogluon_tabular about 0.7 T on covid and cloth, 15 s on ptech; linear
  about 5 s. That is cloth 2 x 446 + 522 + 280 + 5 = 1,699 s, covid 2 x 762 + 1,014 + 560 + 5
  = 3,103 s, ptech 2 x 536 + 719 + 15 = 1,806 s; 6,608 s a seed, 19,800 s for 3 seeds:
  **about 5.5 hours**, over a 4-5 hour budget: at the measured step times even bf16 and the
  floor of 128 steps (the low end of 100-200) need these limits. The fp32 gate adds 9 runs
  of baseline_plus (about 1.3 hours); the four one-trick ablations 36 mmtricks runs (about
  5.8 hours).
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
        time_limit: Seconds per fit unless ``--time-limit`` is given (data sets without
            a limit of their own in ``time_limits``).
        description: One line for the report.
        time_limits: Data set name -> seconds per fit on it, for every config (peers
            included); ``--time-limit`` overrides these too.
    """

    name: str
    max_train_rows: Optional[int]
    overrides: dict[str, Any] = field(default_factory=dict)
    time_limit: float = 1800.0
    description: str = ""
    time_limits: dict[str, float] = field(default_factory=dict)

    def limit_for(self, dataset: str) -> float:
        """Seconds per fit on ``dataset``."""
        return float(self.time_limits.get(dataset, self.time_limit))

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
        overrides={"data.text_max_length": 64, "data.image_size": 128, "data.auto_input_size": False},
        time_limit=90.0,
        description="2-core CPU: train subsampled to 2000 rows, text 64 tokens, images 128 px, 90 s per fit",
    ),
    "standard": Profile(
        name="standard",
        max_train_rows=4000,
        overrides={"env.precision": "bf16-mixed"},
        time_limit=800.0,
        time_limits={"cloth": 400.0, "ptech": 560.0, "covid": 800.0},
        description="2-core CPU, conclusions: train subsampled to 4000 rows, input sizes as the defaults choose "
                    "them, bf16 autocast, per fit cloth 400 s, ptech 560 s, covid and others 800 s (room for the 128-step floor)",
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
