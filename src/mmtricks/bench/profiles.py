"""Benchmark profiles: how much data, which config overrides and how long each run may fit.

``quick`` is for smoke runs: the whole quick comparison (Baseline, Baseline+ and the peers
on the three shared data sets, 3 seeds) in about 90 minutes on a 2-core CPU, about 2
minutes a run, with shrunken inputs (64 tokens, 128 px) and 18-50 optimizer steps a fit:
too few to draw conclusions from. ``standard`` is the profile the documented conclusions
on this 2-core CPU come from (sizing below). ``full`` is the reference setting: all the
data, default config, 30 minutes a fit, meant for a GPU machine.

Sizing of ``standard`` (an estimate from the committed quick-profile results and the
foundation runs in docs/benchmarks.md, not a measurement; the first standard run checks it):

* **Inputs**: no ``data.image_size`` / ``data.text_max_length`` overrides, so each config
  uses the input sizes the defaults choose for the data, as a user gets them. On the
  shared data that is 224-px images (covid's and ptech's images have a 256-px short side;
  the encoder's native 224 caps it) and per row 128 tokens on cloth and covid (95th
  percentile of the rows 136 and 271, capped by ``data.text_max_length``) and 56 on ptech
  (95th percentile 54).
* **Rows**: at most 4,000 train rows per seed, the same for every config and peer. covid
  (506) and ptech (750) are used whole; cloth (18,788) is cut to 4,000 (about 3,500 train /
  500 validation after the held-out split), which keeps its preprocessing, validations and
  the soup's evaluations small; the training itself is set by the step floor, below.
* **Step floor**: ``optim.min_steps`` (128 by default). Under a time limit the fit plan
  (``fit_info["plan"]``, train/plan.py) shrinks gradient accumulation toward one 32-row
  micro batch until the limit affords the floor, and rounds the horizon down to a multiple
  of 16 steps (for horizons of 128-255), so a fit reaches the floor (``floor_reached``) when
  the limit affords 128 steps of one micro batch: about 4,100 rows through forward and
  backward, whatever the table's size (8 epochs of covid, 5.5 of ptech). No row cap makes
  that cheaper on covid or ptech. Early stopping (10 validations without improvement) may
  still end a fit below the floor: the fit had converged, and the report says which fits
  stopped that way.
* **Seconds per 32-row step, validations included**, at these input sizes. From the quick
  profile (64 tokens, 128 px; 2 threads): cloth 0.98 s per micro batch (text + tabular, 64
  tokens), ptech 1.58 (about 0.98 of text and 0.6 of 128-px images), covid 1.68 per step.
  Scaled, text (and tabular) by the token count (128/64 = 2x, 56/64), images by the pixels
  ((224/128)^2 = 3.06x): cloth 0.98 x 2 = 1.96 s, ptech 0.86 + 1.84 = 2.7 s, covid
  (1.68 - 0.6) x 2 + 1.84 = 4.0 s. Check on covid: the default-preset foundation fit took
  689 s for 138 steps with 2 validations an epoch, 5.0 s a step including preprocessing,
  the soup and 3 minutes shared with a test run; 4.0 s of clean steps is 552 s of it.
* **Limits**: 128 steps plus about 40 s (preprocessing, model set-up, the reserve for the
  last validation and the soup; 60 s on cloth, whose 4,000 rows are tokenised and whose 500
  validation rows are read more often): cloth 128 x 1.96 + 60 = 311 s -> **360 s**; ptech
  128 x 2.7 + 40 = 386 s -> **440 s**; covid 128 x 4.0 + 40 = 552 s -> **640 s** (also for any
  other data set). The margin: steps up to 19% (cloth: 300 s / 128 = 2.34 s), 16% (ptech:
  400 s / 128 = 3.13 s) and 17% (covid: 600 s / 128 = 4.69 s) slower than estimated still
  reach the floor; slower ones do not, and the report lists such fits (each line's
  ``fit_summary.plan.floor_reached``).
* **Total** (configs baseline, baseline_plus, linear, autogluon_mm, autogluon_tabular;
  3 seeds; covid, ptech, cloth: 45 runs), per data set and seed with limit T: each mmtricks
  preset 0.94 T (the quick profile's mean for baseline_plus, 0.96 at most) plus test
  prediction and start-up (cloth about 70 s for 4,698 test rows at 128 tokens, covid and
  ptech about 10 s); autogluon_mm 1.23 T (its worst overrun in the quick profile) plus
  15-50 s; autogluon_tabular 0.4-1.0 T on covid and cloth (0.38 of the limit on average in
  the quick profile, 0.68 at most), about 10 s on ptech; linear about 5 s. That is
  cloth 2 x 408 + 473 + 144..360 + 5 = 1,438-1,654 s, covid 2 x 612 + 817 + 256..640 + 5 =
  2,302-2,686 s, ptech 2 x 424 + 571 + 10 + 5 = 1,434 s; 5,174-5,774 s a seed,
  15,500-17,300 s for 3 seeds: **about 4.3-4.8 hours**, inside a 4-5 hour budget. The four
  one-trick ablations add 4 x 3 x 3 = 36 mmtricks runs (12 each of 408, 612 and 424 s =
  17,330 s): about 4.8 hours more.
* **Why 128 steps**: the floor that a 4-5 hour budget affords on covid (the slowest data
  set per step) with the 15-20% margin above. 200 steps (the earlier floor) would need
  960 s covid fits and 6.3-7.1 hours for the core runs.
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
        overrides={},
        time_limit=640.0,
        time_limits={"cloth": 360.0, "ptech": 440.0, "covid": 640.0},
        description="2-core CPU, conclusions: train subsampled to 4000 rows, input sizes as the defaults choose "
                    "them, per fit cloth 360 s, ptech 440 s, covid and others 640 s (room for the 128-step floor)",
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
