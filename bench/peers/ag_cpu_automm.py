"""AutoGluon's AG_AUTOMM stack model, allowed to train on a CPU-only machine. Runs INSIDE .venv-autogluon.

``autogluon_run.py`` (kind ``stack``) imports this module only when torch sees no GPU. AutoGluon
1.6's ``MultiModalPredictorModel`` (the AG_AUTOMM key of ``TabularPredictor``'s hyperparameters)
declares ``minimum_num_gpus = 1`` and ``gpu_required = True``, so on a machine without a GPU
its resource check fails ("The total system num_gpus=0 is less than minimum num_gpus=1") and the
trainer skips the model: the stack would hold no MultiModalPredictor at all. This subclass
changes only that requirement; fitting, prediction, column types (from the feature metadata's
``image_path`` / ``text`` special types) and the hyperparameters handed to
``MultiModalPredictor.fit`` are AutoGluon's own. It is passed as a custom model class, the way
AutoGluon documents custom models (``hyperparameters={ModelClass: {...}}``); its leaderboard
name stays ``MultiModalPredictor`` (the inherited ``ag_name``).

The class lives in its own module, not in ``__main__``, so AutoGluon's pickled model files
refer to an importable class.
"""
from __future__ import annotations

from autogluon.tabular.models import MultiModalPredictorModel


class CPUMultiModalPredictorModel(MultiModalPredictorModel):
    """``MultiModalPredictorModel`` without the GPU requirement (see the module doc)."""

    minimum_num_gpus = 0  # AutoGluon 1.6: read by AbstractModel.get_minimum_resources
    gpu_required = False

    def get_minimum_resources(self, is_gpu_available: bool = False) -> dict:
        """One CPU; no GPU (also where a release overrides this method instead of the attributes)."""
        return {"num_cpus": 1}
