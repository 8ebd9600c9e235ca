"""Save and load fitted predictors: a folder of JSON and safetensors, written atomically.

Layout::

    model/
      predictor.json   format version, predictor arguments, eval metric, fit facts
      config.json      the resolved MMConfig
      schema.json      label, problem type, column kinds, classes
      processors.json  fitted processor state
      network.json     architecture spec of the network (registry names + kwargs)
      weights.safetensors
      versions.json    library versions at save time
      tokenizer/       the text encoder's tokenizer files (JSON/text), when there is text

Loading reads only these names, never unpickles and never imports code from the folder.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import warnings

from .errors import ModelLoadError, ModelSaveError

FORMAT_VERSION = 1
JSON_FILES = ("predictor.json", "config.json", "schema.json", "processors.json", "network.json", "versions.json")
WEIGHTS = "weights.safetensors"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja"}


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("mmtricks", "torch", "transformers", "timm", "safetensors", "numpy", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _write_json(folder: str, name: str, data) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)


def save_predictor(predictor, path: str) -> str:
    """Write into a temporary sibling folder, then swap it into place."""
    from safetensors.torch import save_model

    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".mmtricks-save-", dir=parent)
    try:
        _write_json(tmp, "predictor.json", {
            "format_version": FORMAT_VERSION,
            "label": predictor.label, "problem_type": predictor.schema_.problem_type,
            "eval_metric": predictor.metric_, "preset": predictor.preset, "seed": predictor.seed,
            "fit_info": predictor.fit_info_,
        })
        _write_json(tmp, "config.json", predictor.config_.to_dict())
        _write_json(tmp, "schema.json", predictor.schema_.to_dict())
        _write_json(tmp, "processors.json", predictor.preprocessor_.state())
        _write_json(tmp, "network.json", predictor.model_.spec())
        _write_json(tmp, "versions.json", library_versions())
        save_model(predictor.model_, os.path.join(tmp, WEIGHTS))
        if predictor.preprocessor_.text is not None:
            predictor.preprocessor_.text.tokenizer.save_pretrained(os.path.join(tmp, TOKENIZER_DIR))
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".mmtricks-old-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelSaveError(f"Could not save the model to '{path}': {exc}. "
                             f"{'A previous model there is intact. ' if os.path.exists(path) else ''}"
                             f"Free disk space or choose another folder.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def check_folder(path: str) -> None:
    """Refuse anything a saved model never holds: other files, links, paths leading outside."""
    allowed = set(JSON_FILES) | {WEIGHTS, TOKENIZER_DIR}
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.islink(full):
            raise ModelLoadError(f"'{full}' is a link; a saved model holds only plain files. Refusing to load.")
        if name not in allowed:
            raise ModelLoadError(f"Unexpected file '{name}' in model folder '{path}'; a saved model holds only "
                                 f"{sorted(allowed)}. Refusing to load.")
    tok = os.path.join(path, TOKENIZER_DIR)
    if os.path.exists(tok):
        if not os.path.isdir(tok):
            raise ModelLoadError(f"'{tok}' should be a folder of tokenizer files.")
        for name in os.listdir(tok):
            full = os.path.join(tok, name)
            if os.path.islink(full) or not os.path.isfile(full) or name not in TOKENIZER_FILES:
                raise ModelLoadError(f"Unexpected entry '{TOKENIZER_DIR}/{name}' in model folder '{path}'. "
                                     f"Refusing to load.")


def _read_json(folder: str, name: str):
    file = os.path.join(folder, name)
    if not os.path.isfile(file):
        raise ModelLoadError(f"'{folder}' is not a complete mmtricks model: '{name}' is missing.")
    try:
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"'{file}' is not valid JSON: {exc}") from exc


def load_predictor(cls, path: str, verbosity: int = 1):
    from safetensors.torch import load_model

    from .config import MMConfig
    from .data.preprocessor import Preprocessor
    from .models.net import MultimodalNet
    from .schema import Schema

    if not os.path.isdir(path):
        raise ModelLoadError(f"Model folder '{path}' does not exist.")
    check_folder(path)
    meta = _read_json(path, "predictor.json")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"'{path}' has format version {meta.get('format_version')!r}; "
                             f"this mmtricks reads version {FORMAT_VERSION}.")
    try:
        config = MMConfig.from_dict(_read_json(path, "config.json"))
        schema = Schema.from_dict(_read_json(path, "schema.json"))
        tokenizer = None
        if os.path.isdir(os.path.join(path, TOKENIZER_DIR)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(os.path.join(path, TOKENIZER_DIR), local_files_only=True,
                                                      trust_remote_code=False)
        pre = Preprocessor.from_state(schema, _read_json(path, "processors.json"), tokenizer)
        # The architecture only: no pretrained backbone is read and the random initialisation is
        # skipped, since the strict load below overwrites every parameter and buffer.
        net = MultimodalNet.from_spec(_read_json(path, "network.json"), init_weights=False)
        load_model(net, os.path.join(path, WEIGHTS), strict=True)
    except ModelLoadError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"Could not load the model in '{path}': {type(exc).__name__}: {exc}") from exc
    saved = _read_json(path, "versions.json")
    now = library_versions()
    changed = {k: (saved.get(k), now[k]) for k in ("mmtricks", "torch", "transformers", "timm")
               if saved.get(k) != now[k]}
    if changed:
        warnings.warn(f"Model saved with other library versions (saved -> now): {changed}. "
                      f"Predictions may differ slightly.", stacklevel=3)
    predictor = cls(label=meta["label"], problem_type=meta["problem_type"], eval_metric=meta["eval_metric"],
                    preset=meta.get("preset", "default"), seed=meta.get("seed", 0), verbosity=verbosity)
    net.eval()
    predictor.config_, predictor.schema_, predictor.preprocessor_, predictor.model_ = config, schema, pre, net
    predictor.metric_ = meta["eval_metric"]
    predictor.fit_info_ = meta.get("fit_info", {})
    return predictor
