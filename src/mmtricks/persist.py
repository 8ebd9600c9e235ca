"""Save and load fitted predictors: a folder of JSON and safetensors, written atomically.

Layout of one network (``kind: network``)::

    model/
      predictor.json   format version, kind, predictor arguments, eval metric, fit facts
      config.json      the resolved MMConfig
      schema.json      label, problem type, column kinds, classes
      processors.json  fitted processor state
      network.json     architecture spec of the network (registry names + kwargs)
      weights.safetensors
      versions.json    library versions at save time
      tokenizer/       the text encoder's tokenizer files (JSON/text), when there is text

An ensemble (``kind: ensemble``) holds predictor.json (members, weights), config.json,
schema.json, versions.json and ``members/m0, m1, ...``: a network member is a network
folder as above; a classic member is ``member.json`` + ``arrays.safetensors`` (+ LightGBM's
own text model, ``lightgbm.txt``; + ``tokenizer/`` and the frozen encoders' weights in the
arrays for ``lightgbm_embed``). Format 1 (single networks, before ensembles) still loads.

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

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
JSON_FILES = ("predictor.json", "config.json", "schema.json", "processors.json", "network.json", "versions.json")
ENSEMBLE_FILES = {"predictor.json", "config.json", "schema.json", "versions.json", "members"}
MEMBER_FILES = {"member.json", "arrays.safetensors", "lightgbm.txt"}
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
    def write(folder: str) -> None:
        if getattr(predictor, "members_", None):
            _write_ensemble(predictor, folder)
        else:
            _write_network(predictor, folder)
    return write_atomically(path, write, "the model")


def write_atomically(path: str, write, what: str) -> str:
    """``write(folder)`` into a temporary sibling of ``path``, then swap it into place: a crash
    or a full disk never leaves a half-written folder, and the previous one stays intact."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".mmtricks-save-", dir=parent)
    try:
        write(tmp)
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
        raise ModelSaveError(f"Could not save {what} to '{path}': {exc}. "
                             f"{'A previous one there is intact. ' if os.path.exists(path) else ''}"
                             f"Free disk space or choose another folder.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _predictor_meta(predictor, kind: str) -> dict:
    return {"format_version": FORMAT_VERSION, "kind": kind,
            "label": predictor.label, "problem_type": predictor.schema_.problem_type,
            "eval_metric": predictor.metric_, "preset": predictor.preset, "seed": predictor.seed,
            "sample_weight": predictor.sample_weight, "fit_info": predictor.fit_info_}


def _write_network(predictor, folder: str) -> None:
    from safetensors.torch import save_model

    _write_json(folder, "predictor.json", _predictor_meta(predictor, "network"))
    _write_json(folder, "config.json", predictor.config_.to_dict())
    _write_json(folder, "schema.json", predictor.schema_.to_dict())
    _write_json(folder, "processors.json", predictor.preprocessor_.state())
    _write_json(folder, "network.json", predictor.model_.spec())
    _write_json(folder, "versions.json", library_versions())
    save_model(predictor.model_, os.path.join(folder, WEIGHTS))
    if predictor.preprocessor_.text is not None:
        predictor.preprocessor_.text.tokenizer.save_pretrained(os.path.join(folder, TOKENIZER_DIR))


def _write_ensemble(predictor, folder: str) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    members = []
    for j, m in enumerate(predictor.members_):
        sub = os.path.join(folder, "members", f"m{j}")
        os.makedirs(sub)
        if m.kind == "network":
            _write_network(m.model, sub)
        else:
            meta, arrays, files = m.model.state()
            _write_json(sub, "member.json", meta)
            # C order: safetensors writes an array's buffer as it lies in memory (a Fortran-ordered
            # coefficient matrix would come back transposed in effect)
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, os.path.join(sub, "arrays.safetensors"))
            for name, text in files.items():
                with open(os.path.join(sub, name), "w", encoding="utf-8") as f:
                    f.write(text)
            tokenizer = getattr(m.model, "tokenizer", None)  # a member that embeds text keeps its tokenizer
            if tokenizer is not None:
                tokenizer.save_pretrained(os.path.join(sub, TOKENIZER_DIR))
        members.append({"folder": f"m{j}", "name": m.name, "kind": m.kind, "weight": m.weight,
                        "val_score": m.val_score, "fit_seconds": m.fit_seconds})
    _write_json(folder, "predictor.json", {**_predictor_meta(predictor, "ensemble"), "members": members})
    _write_json(folder, "config.json", predictor.config_.to_dict())
    _write_json(folder, "schema.json", predictor.schema_.to_dict())
    _write_json(folder, "versions.json", library_versions())


def check_folder(path: str, kind: str = "network") -> None:
    """Refuse anything a saved model never holds: other files, links, paths leading outside."""
    allowed = ENSEMBLE_FILES if kind == "ensemble" else set(JSON_FILES) | {WEIGHTS, TOKENIZER_DIR}
    _only(path, allowed)
    if kind == "network":
        _check_tokenizer(path)


def _check_tokenizer(path: str) -> None:
    """``path/tokenizer``, when there, holds only plain tokenizer files."""
    tok = os.path.join(path, TOKENIZER_DIR)
    if not os.path.exists(tok):
        return
    if os.path.islink(tok) or not os.path.isdir(tok):
        raise ModelLoadError(f"'{tok}' should be a folder of tokenizer files.")
    for name in os.listdir(tok):
        full = os.path.join(tok, name)
        if os.path.islink(full) or not os.path.isfile(full) or name not in TOKENIZER_FILES:
            raise ModelLoadError(f"Unexpected entry '{TOKENIZER_DIR}/{name}' in model folder '{path}'. "
                                 f"Refusing to load.")


def _read_tokenizer(path: str):
    """The tokenizer saved in ``path/tokenizer`` (data files only, no remote code), or None."""
    if not os.path.isdir(os.path.join(path, TOKENIZER_DIR)):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.path.join(path, TOKENIZER_DIR), local_files_only=True,
                                         trust_remote_code=False)


def _only(path: str, allowed: set) -> None:
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.islink(full):
            raise ModelLoadError(f"'{full}' is a link; a saved model holds only plain files. Refusing to load.")
        if name not in allowed:
            raise ModelLoadError(f"Unexpected file '{name}' in model folder '{path}'; a saved model holds only "
                                 f"{sorted(allowed)}. Refusing to load.")


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
    if not os.path.isdir(path):
        raise ModelLoadError(f"Model folder '{path}' does not exist.")
    meta = _read_json(path, "predictor.json") if os.path.isfile(os.path.join(path, "predictor.json")) else {}
    kind = meta.get("kind", "network")
    if kind not in ("network", "ensemble"):
        raise ModelLoadError(f"'{path}' holds a model of unknown kind {kind!r}.")
    check_folder(path, kind)
    meta = _read_json(path, "predictor.json")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelLoadError(f"'{path}' has format version {meta.get('format_version')!r}; "
                             f"this mmtricks reads versions {list(READABLE_VERSIONS)}.")
    _warn_versions(path)
    predictor = cls(label=meta["label"], problem_type=meta["problem_type"], eval_metric=meta["eval_metric"],
                    preset=meta.get("preset", "default"), seed=meta.get("seed", 0), verbosity=verbosity,
                    sample_weight=meta.get("sample_weight"))
    if kind == "ensemble":
        return _read_ensemble(cls, path, meta, predictor, verbosity)
    return _read_network(path, meta, predictor)


def _warn_versions(path: str) -> None:
    saved = _read_json(path, "versions.json")
    now = library_versions()
    changed = {k: (saved.get(k), now[k]) for k in ("mmtricks", "torch", "transformers", "timm")
               if saved.get(k) != now[k]}
    if changed:
        warnings.warn(f"Model saved with other library versions (saved -> now): {changed}. "
                      f"Predictions may differ slightly.", stacklevel=4)


def _read_network(path: str, meta: dict, predictor):
    from safetensors.torch import load_model

    from .config import MMConfig
    from .data.preprocessor import Preprocessor
    from .models.net import MultimodalNet
    from .schema import Schema

    try:
        config = MMConfig.from_dict(_read_json(path, "config.json"))
        schema = Schema.from_dict(_read_json(path, "schema.json"))
        tokenizer = _read_tokenizer(path)
        pre = Preprocessor.from_state(schema, _read_json(path, "processors.json"), tokenizer)
        # The architecture only: no pretrained backbone is read and the random initialisation is
        # skipped, since the strict load below overwrites every parameter and buffer.
        net = MultimodalNet.from_spec(_read_json(path, "network.json"), init_weights=False)
        load_model(net, os.path.join(path, WEIGHTS), strict=True)
    except ModelLoadError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"Could not load the model in '{path}': {type(exc).__name__}: {exc}") from exc
    net.eval()
    predictor.config_, predictor.schema_, predictor.preprocessor_, predictor.model_ = config, schema, pre, net
    predictor.metric_ = meta["eval_metric"]
    predictor.fit_info_ = meta.get("fit_info", {})
    return predictor


def _read_ensemble(cls, path: str, meta: dict, predictor, verbosity: int):
    from safetensors.numpy import load_file

    from .config import MMConfig
    from .ensemble.classic import CLASSIC_MEMBERS
    from .ensemble.pool import Member
    from .schema import Schema

    members_dir = os.path.join(path, "members")
    folders = set(os.listdir(members_dir)) if os.path.isdir(members_dir) else set()
    try:
        config = MMConfig.from_dict(_read_json(path, "config.json"))
        schema = Schema.from_dict(_read_json(path, "schema.json"))
        members = []
        for item in meta["members"]:
            if item["folder"] not in folders:  # only folders that exist here: no path from the JSON is followed
                raise ModelLoadError(f"'{path}' lists member folder {item['folder']!r}, which it does not hold.")
            sub = os.path.join(members_dir, item["folder"])
            if os.path.islink(sub) or not os.path.isdir(sub):
                raise ModelLoadError(f"'{sub}' should be a plain folder. Refusing to load.")
            if item["kind"] == "network":
                model = load_predictor(cls, sub, verbosity)
            elif item["kind"] in CLASSIC_MEMBERS:
                _only(sub, MEMBER_FILES | {TOKENIZER_DIR})
                _check_tokenizer(sub)
                files = {}
                for name in MEMBER_FILES - {"member.json", "arrays.safetensors"}:
                    if os.path.isfile(os.path.join(sub, name)):
                        with open(os.path.join(sub, name), encoding="utf-8") as f:
                            files[name] = f.read()
                model = CLASSIC_MEMBERS[item["kind"]].from_state(
                    schema, _read_json(sub, "member.json"), load_file(os.path.join(sub, "arrays.safetensors")), files,
                    _read_tokenizer(sub))
            else:
                raise ModelLoadError(f"'{path}' holds a member of unknown kind {item['kind']!r}.")
            members.append(Member(item["name"], item["kind"], model, None, item["val_score"], item["fit_seconds"],
                                  float(item["weight"])))
    except ModelLoadError:
        raise
    except ImportError as exc:
        raise ModelLoadError(f"The model in '{path}' has a member that needs {exc.name or exc}: "
                             "pip install 'mmtricks[pool]'.") from exc
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"Could not load the model in '{path}': {type(exc).__name__}: {exc}") from exc
    predictor.config_, predictor.schema_, predictor.members_ = config, schema, members
    predictor.metric_ = meta["eval_metric"]
    predictor.fit_info_ = meta.get("fit_info", {})
    return predictor
