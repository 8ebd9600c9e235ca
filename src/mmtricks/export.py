"""Export a fitted predictor for serving without torch: ONNX networks, everything else as JSON.

``MultimodalPredictor.export(path)`` (CLI ``mmtricks export``) writes, atomically::

    DIR/
      export.json          format, label, problem type, classes, feature columns, members + weights
      members/m0, m1 ...   one folder per member with a weight > 0 (a single network is member m0)

A **network** member folder holds ``model.onnx`` (the network's logits, opset ``OPSET``,
a dynamic batch axis and, for text, a dynamic sequence axis), ``preprocess.json`` (the
ONNX input names; numerical means/stds, categorical vocabularies, the text columns,
length and special token ids, the image size/crop/mean/std; the label scaling) and, with
text, ``tokenizer.json`` (the Hugging Face fast tokenizer, readable by ``tokenizers``).
A **lightgbm** member holds ``lightgbm.txt`` (LightGBM's own text model) and
``lightgbm.json``; a **linear** member ``linear.json`` (coefficients, intercept, classes);
both hold ``features.json`` (the numerical/categorical state, per text column the TF-IDF
vocabulary, idf and settings).

:mod:`mmtricks.serving` predicts from such a folder with onnxruntime and numpy only.

Networks go through ``torch.export.export(strict=True)`` and the dynamo-based ONNX exporter
(``torch.onnx.export(ExportedProgram, dynamo=True)``; needs ``onnxscript``). The TorchScript
exporter (``dynamo=False``) does not work with these networks: it bakes ``len(x)`` of the
FT-Transformer into a constant batch size, and non-strict ``torch.export`` does the same.
PyTorch's fused ``TransformerEncoderLayer`` fast path has no ONNX translation, so it is off
while exporting (the math is the same). Each exported graph is checked against the torch
network on a fresh random batch of another size (``CHECK_ATOL`` on the logits).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import ConfigError, MMTricksError
from .persist import _write_json

EXPORT_FORMAT = "mmtricks-export"
EXPORT_VERSION = 1
FORMATS = ("onnx",)
OPSET = 18
CHECK_ATOL = 1e-3  # logits, ONNX Runtime against torch, on the export-time check batch
INPUT_PREFIX = "in_"  # ONNX input names: in_num, in_text_ids ... (bare names can clash with node names)


class ExportError(MMTricksError, RuntimeError):
    """A fitted model could not be exported (or its export does not match it)."""


def export_predictor(predictor, path: str, format: str = "onnx", check: bool = True) -> str:
    """Write ``predictor``'s export into folder ``path`` (replaced atomically); return its path."""
    if format not in FORMATS:
        raise ConfigError(f"Unknown export format {format!r}; choose from {list(FORMATS)}.")
    predictor._check_fitted()
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"Export needs onnx, onnxruntime and onnxscript ({exc}); "
                          "install them with: pip install 'mmtricks[export]'.") from exc
    from .persist import write_atomically

    return write_atomically(path, lambda folder: _write_export(predictor, folder, check), "the export")


def _write_export(predictor, folder: str, check: bool) -> None:
    from .persist import library_versions

    schema = predictor.schema_
    if getattr(predictor, "members_", None):
        members = [(m.name, m.kind, m.model, float(m.weight)) for m in predictor.members_ if m.weight > 0]
    else:
        members = [(predictor.preset, "network", predictor, 1.0)]
    listed = []
    for j, (name, kind, model, weight) in enumerate(members):
        sub = os.path.join(folder, "members", f"m{j}")
        os.makedirs(sub)
        if kind == "network":
            info = export_network(model, sub, check=check)
        elif kind == "lightgbm":
            info = _export_lightgbm(model, sub)
        elif kind == "linear":
            info = _export_linear(model, sub)
        elif kind == "lightgbm_embed":
            raise ExportError(f"Member {name!r} (LightGBM on frozen embeddings) cannot be exported yet: its "
                              "encoders run before the trees. Fit the pool without it (e.g. pool=[..., 'lightgbm']) "
                              "to export.")
        else:
            raise ExportError(f"Member {name!r} is of kind {kind!r}, which export does not know.")
        listed.append({"folder": f"m{j}", "name": name, "kind": kind, "weight": weight, **info})
    versions = library_versions()
    for lib in ("onnx", "onnxruntime", "onnxscript", "lightgbm", "tokenizers"):
        try:
            from importlib.metadata import version

            versions[lib] = version(lib)
        except Exception:  # noqa: BLE001 - not installed
            versions[lib] = "not installed"
    _write_json(folder, "export.json", {
        "format": EXPORT_FORMAT, "format_version": EXPORT_VERSION,
        "kind": "ensemble" if getattr(predictor, "members_", None) else "network", "label": predictor.label,
        "problem_type": schema.problem_type, "classes": list(schema.classes or []),
        "eval_metric": predictor.metric_, "columns": dict(schema.column_kinds), "members": listed,
        "versions": versions})


# --------------------------------------------------------------------------- networks
def _inputs(pre, net) -> list[str]:
    """Batch keys the graph takes (zero-width numeric/categorical blocks are made inside)."""
    names = []
    if "tabular" in net.encoders:
        if pre.num.columns:
            names += ["num", "num_missing"]
        if pre.cat.columns:
            names.append("cat")
    if pre.text is not None and "text" in net.encoders:
        names += ["text_ids", "text_mask", "text_missing"]
    if pre.image is not None and "image" in net.encoders:
        names += ["image", "image_missing"]
    return names


def _graph_module(net, names: list[str]):
    import torch
    from torch import nn

    class Graph(nn.Module):
        """``forward(*tensors in names order) -> logits``: the batch dict the network reads."""

        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, *tensors):
            batch = dict(zip(names, tensors))
            b = tensors[0].shape[0]
            if "num" not in batch:
                batch["num"] = torch.zeros(b, 0, dtype=torch.float32)
                batch["num_missing"] = torch.zeros(b, 0, dtype=torch.bool)
            if "cat" not in batch:
                batch["cat"] = torch.zeros(b, 0, dtype=torch.long)
            return self.net(batch)["logits"]

    return Graph().eval()


def _example(pre, names: list[str], rows: int, length: int, seed: int) -> tuple:
    """Random inputs of the graph's dtypes and shapes; rows after the first padded, some flags set."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    n_num, cards = len(pre.num.columns), [len(v) + 1 for v in (pre.cat.vocab or [])]
    vocab = len(pre.text.tokenizer) if pre.text is not None else 1
    for name in names:
        if name == "num":
            out.append(torch.randn(rows, n_num, generator=g))
        elif name == "num_missing":
            out.append(torch.rand(rows, n_num, generator=g) < 0.3)
        elif name == "cat":
            out.append(torch.stack([torch.randint(0, c, (rows,), generator=g) for c in cards], 1))
        elif name == "text_ids":
            out.append(torch.randint(0, max(2, min(vocab, 1000)), (rows, length), generator=g))
        elif name == "text_mask":
            mask = torch.ones(rows, length, dtype=torch.long)
            for r in range(1, rows):
                mask[r, max(1, length - r * length // (rows + 1)):] = 0
            out.append(mask)
        elif name == "text_missing":
            out.append(torch.arange(rows) % 3 == 2)
        elif name == "image":
            out.append(torch.randn(rows, len(pre.image.columns), 3, pre.image.size, pre.image.size, generator=g))
        elif name == "image_missing":
            out.append(torch.rand(rows, len(pre.image.columns), generator=g) < 0.3)
    return tuple(out)


def export_network(child, folder: str, check: bool = True) -> dict:
    """``model.onnx`` + ``preprocess.json`` (+ ``tokenizer.json``) of one fitted network predictor."""
    import torch

    pre, net = child.preprocessor_, child.model_
    names = _inputs(pre, net)
    if not names:
        raise ExportError("This network has no input to export.")
    max_len = 0
    if "text_ids" in names:
        text = pre.text
        max_len = max(2, text.max_length, len(text._prefix) + len(text._sep) * max(1, len(text.columns)))
    graph = _graph_module(net, names)
    batch_dim = torch.export.Dim("batch", min=1)
    seq_dim = torch.export.Dim("seq", min=1, max=max_len) if max_len else None
    dynamic = tuple({0: batch_dim, 1: seq_dim} if n in ("text_ids", "text_mask") else {0: batch_dim} for n in names)
    example = _example(pre, names, 3, max(2, min(max_len, 7)), seed=0)
    file = os.path.join(folder, "model.onnx")
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = net.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    net.to("cpu")
    try:
        torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder layer has no ONNX translation
        with torch.no_grad(), warnings.catch_warnings():
            # transformers' output capturing is a global the tracer reports; it does not change the graph
            warnings.filterwarnings("ignore", message="While compiling, we found certain side effects")
            program = torch.export.export(graph, example, dynamic_shapes=(dynamic,), strict=True)
            torch.onnx.export(program, f=file, input_names=[INPUT_PREFIX + n for n in names],
                              output_names=["logits"], opset_version=OPSET, dynamo=True, external_data=False,
                              verbose=False)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporters raise many kinds
        raise ExportError(f"Could not export the network to ONNX: {type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    try:
        opset = _name_axes(file, names)
        graph.eval()
        diff = _check(file, graph, pre, names, max_len) if check else None
    finally:
        net.to(device)
        net.train(was_training)
    state = {
        "inputs": [INPUT_PREFIX + n for n in names], "output": "logits", "opset": opset,
        "batch_size": int(child.config_.env.eval_batch_size),
        "numerical": pre.num.state(), "categorical": pre.cat.state(), "label": pre.label.state(),
        "text": None, "image": pre.image.state() if pre.image is not None else None,
    }
    if pre.text is not None:
        t = pre.text
        state["text"] = {**t.state(), "prefix": list(t._prefix), "sep": list(t._sep), "pad_id": t.pad_id,
                         "truncation_side": str(getattr(t.tokenizer, "truncation_side", "right"))}
        backend = getattr(t.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ExportError(f"The text tokenizer ({type(t.tokenizer).__name__}) is not a Hugging Face fast "
                              "tokenizer, so it has no tokenizer.json for serving.")
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(backend.to_str())
    _write_json(folder, "preprocess.json", state)
    return {"opset": opset, "check_max_abs_diff": diff}


def _name_axes(file: str, names: list[str]) -> int:
    """Call the dynamic axes 'batch' and 'seq' in the saved graph; return its opset."""
    import onnx

    model = onnx.load(file)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for k, dim in enumerate(dims):
            if dim.HasField("dim_param"):
                dim.dim_param = "batch" if k == 0 else "seq"
    onnx.save(model, file)
    return int(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET))


def _check(file: str, graph, pre, names: list[str], max_len: int) -> float:
    """The largest logit difference between ONNX Runtime and torch on a fresh batch of 5 rows."""
    import onnxruntime as ort
    import torch

    example = _example(pre, names, 5, max(2, min(max_len, 11)) if max_len else 2, seed=1)
    with torch.no_grad():
        ref = graph(*example).float().numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
    out = session.run(None, {INPUT_PREFIX + n: t.numpy() for n, t in zip(names, example)})[0]
    diff = float(np.abs(out - ref).max())
    if not np.isfinite(diff) or diff > CHECK_ATOL:
        raise ExportError(f"The exported ONNX graph does not match the network: logits differ by {diff:.3g} "
                          f"(allowed {CHECK_ATOL:g}).")
    return diff


# --------------------------------------------------------------------------- classic members
def _features_state(features) -> dict:
    meta, arrays = features.state()
    settings = []
    for vec in features.vectorizers:
        p = vec.get_params()
        settings.append({k: p[k] for k in ("ngram_range", "sublinear_tf", "norm", "lowercase", "token_pattern",
                                           "use_idf", "analyzer", "strip_accents", "binary")})
    return {**meta, "idf": [arrays[f"idf.{j}"].tolist() for j in range(len(features.vectorizers))],
            "tfidf": settings}


def _export_linear(member, folder: str) -> dict:
    model = member.model_
    _write_json(folder, "features.json", _features_state(member.features_))
    _write_json(folder, "linear.json", {
        "regression": member.regression,
        "coef": np.atleast_2d(np.asarray(model.coef_, dtype=np.float64)).tolist(),
        "intercept": np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64)).tolist(),
        "classes": [] if member.regression else np.asarray(model.classes_).astype(int).tolist(),
    })
    return {}


def _export_lightgbm(member, folder: str) -> dict:
    booster = member.booster_
    _write_json(folder, "features.json", _features_state(member.features_))
    with open(os.path.join(folder, "lightgbm.txt"), "w", encoding="utf-8") as f:
        f.write(booster.model_to_string())
    _write_json(folder, "lightgbm.json", {"best_iteration": int(booster.best_iteration or 0),
                                          "problem_type": member.schema.problem_type})
    return {}
