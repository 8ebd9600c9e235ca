"""Benchmark data set folders: a data directory with ``manifest.json``, or folders with ``dataset.json``.

A data set folder holds ``train.parquet``, ``test.parquet``, optional ``images/`` (image
columns hold paths relative to the folder) and a description: an entry of the data
directory's ``manifest.json`` (a list of objects) or the folder's own ``dataset.json``
(one object). Fields: ``name``, ``label`` (required), ``problem_type``, ``metric``,
``modalities``, ``image_columns``, ``text_columns``, optional ``tabular_columns`` (default:
every other column) and, in a manifest, ``path`` (relative to the data directory).

A folder without a description works too when the label is given (``mmtricks bench
--datasets FOLDER --label y``): its name is the folder's, its splits ``train.parquet`` /
``test.parquet`` (or ``train.csv`` / ``test.csv``), and the rest is inferred the way the
predictor infers it (:func:`mmtricks.schema.infer.infer_schema` on the train split: image,
text and tabular columns, the problem type; the metric is the predictor's default for it).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigError, SchemaError, one_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MODALITY_ORDER = ("image", "text", "tabular")


@dataclass
class BenchDataset:
    """One data set: its splits and what the harness needs to know about them.

    Attributes:
        name: Data set name (unique in its data directory).
        train: Training split (every row; the harness subsamples per profile).
        test: Test split.
        base_dir: Folder relative image paths resolve against.
        label: Label column.
        problem_type: 'binary', 'multiclass' or 'regression'.
        metric: Metric the data set is scored with.
        modalities: Modalities present, in the order image, text, tabular.
        image_columns: Columns holding image paths.
        text_columns: Free-text columns.
        tabular_columns: Numerical and categorical columns.
        entry: The raw manifest / dataset.json object.
    """

    name: str
    train: "pd.DataFrame"
    test: "pd.DataFrame"
    base_dir: str
    label: str
    problem_type: str
    metric: str
    modalities: list[str]
    image_columns: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    tabular_columns: list[str] = field(default_factory=list)
    entry: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Modality group -> columns, non-empty groups only (the unit of missingness)."""
        out = {"tabular": self.tabular_columns, "text": self.text_columns, "image": self.image_columns}
        return {k: list(v) for k, v in out.items() if v}

    @property
    def modality_group(self) -> str:
        """'image+text+tabular', 'text+tabular', ...: the report's grouping key."""
        return "+".join(m for m in MODALITY_ORDER if m in self.modalities)

    @property
    def column_types(self) -> dict[str, str]:
        """Declared image and text columns as predictor ``column_types``."""
        out = {c: "image" for c in self.image_columns}
        out.update({c: "text" for c in self.text_columns})
        return out


def resolve_data_dir(data_dir: Optional[str] = None) -> str:
    """The data directory: ``data_dir``, else env MMTRICKS_DATA, else ./../shared/data.

    Raises:
        ConfigError: None of them is an existing folder.
    """
    if data_dir:
        if not os.path.isdir(data_dir):
            raise ConfigError(f"--data-dir '{data_dir}' is not a folder.")
        return os.path.abspath(data_dir)
    env = os.environ.get("MMTRICKS_DATA")
    if env:
        if not os.path.isdir(env):
            raise ConfigError(f"MMTRICKS_DATA='{env}' is not a folder.")
        return os.path.abspath(env)
    default = os.path.join(os.getcwd(), "..", "shared", "data")
    if os.path.isdir(default):
        return os.path.abspath(default)
    raise ConfigError(
        "No benchmark data directory: pass --data-dir DIR (or data_dir=...), or set MMTRICKS_DATA. "
        "It holds manifest.json, or one folder per data set with dataset.json, train.parquet and test.parquet."
    )


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise SchemaError(f"Could not read '{path}': {exc}") from exc


def list_entries(data_dir: Optional[str] = None) -> list[dict[str, Any]]:
    """Every data set described in the data directory, each with an absolute ``path``.

    Reads ``manifest.json`` when present, else each subfolder's ``dataset.json``.
    """
    root = resolve_data_dir(data_dir)
    manifest = os.path.join(root, "manifest.json")
    entries: list[dict[str, Any]] = []
    if os.path.isfile(manifest):
        raw = _read_json(manifest)
        if isinstance(raw, dict):
            raw = raw.get("datasets", [])
        if not isinstance(raw, list):
            raise SchemaError(f"'{manifest}' must hold a list of data set objects.")
        for item in raw:
            if not isinstance(item, dict) or "name" not in item:
                raise SchemaError(f"'{manifest}': every entry needs a 'name'. Got {item!r}.")
            entry = dict(item)
            entry["path"] = os.path.join(root, str(item.get("path", item["name"])))
            entries.append(entry)
        return entries
    for sub in sorted(os.listdir(root)):
        desc = os.path.join(root, sub, "dataset.json")
        if os.path.isfile(desc):
            entry = dict(_read_json(desc))
            entry.setdefault("name", sub)
            entry["path"] = os.path.join(root, sub)
            entries.append(entry)
    return entries


SPLIT_SUFFIXES = (".parquet", ".csv")


def split_path(folder: str, split: str) -> Optional[str]:
    """``folder/<split>.parquet``, else ``folder/<split>.csv``; None when neither exists."""
    for suffix in SPLIT_SUFFIXES:
        path = os.path.join(folder, split + suffix)
        if os.path.isfile(path):
            return path
    return None


def _entry_for(name_or_path: str, data_dir: Optional[str], label: Optional[str] = None) -> dict[str, Any]:
    desc = os.path.join(str(name_or_path), "dataset.json")
    if os.path.isfile(desc):
        entry = dict(_read_json(desc))
        entry.setdefault("name", os.path.basename(os.path.abspath(str(name_or_path))))
        entry["path"] = os.path.abspath(str(name_or_path))
        return entry
    folder = str(name_or_path)
    if label and os.path.isdir(folder) and split_path(folder, "train"):
        # No description: the label comes from --label, everything else is inferred in load_dataset.
        return {"name": os.path.basename(os.path.abspath(folder)), "label": label, "path": os.path.abspath(folder),
                "inferred": True}
    if os.path.isdir(folder) and (os.sep in folder or split_path(folder, "train")):
        if split_path(folder, "train"):
            raise SchemaError(f"Data set folder '{name_or_path}' has no dataset.json describing it: pass its label "
                              f"column (--label COLUMN, or label= in Python) to infer the rest.")
        raise SchemaError(f"Data set folder '{name_or_path}' has no dataset.json describing it and no train.parquet "
                          f"or train.csv.")
    entries = list_entries(data_dir)
    if not entries:
        raise ConfigError(f"No data sets in '{resolve_data_dir(data_dir)}': it needs manifest.json or "
                          f"subfolders with dataset.json.")
    for entry in entries:
        if entry["name"] == name_or_path:
            return entry
    raise ConfigError(one_of("dataset", name_or_path, [e["name"] for e in entries]))


def _columns(entry: dict[str, Any], key: str, columns: list[str]) -> list[str]:
    out = [str(c) for c in entry.get(key) or []]
    unknown = [c for c in out if c not in columns]
    if unknown:
        raise SchemaError(f"Data set '{entry['name']}': {key} {unknown} are not columns of train.parquet.")
    return out


def load_dataset(name_or_path: str, data_dir: Optional[str] = None, label: Optional[str] = None) -> BenchDataset:
    """Load a benchmark data set by name (from the data directory) or from its folder.

    Args:
        name_or_path: A name listed in the data directory, or a folder holding
            ``dataset.json``, ``train.parquet`` and ``test.parquet``; with ``label``, also a
            folder holding only ``train`` / ``test`` as Parquet or CSV.
        data_dir: The data directory (default: env MMTRICKS_DATA, else ./../shared/data).
        label: Label column for a folder without a description (image, text and tabular
            columns, problem type and metric are then inferred as the predictor infers
            them). A described data set keeps its own label; naming another is an error.

    Returns:
        The data set with both splits read.

    Raises:
        ConfigError: Unknown name (the message lists the known ones), or ``label``
            contradicts the data set's description.
        SchemaError: Missing files, label or declared columns.
    """
    from ..data.io import read_table

    entry = _entry_for(name_or_path, data_dir, label)
    folder = entry["path"]
    name = str(entry["name"])
    if label and entry.get("label") != label:
        raise ConfigError(f"Data set '{name}' is described with label {entry.get('label')!r}; --label {label!r} "
                          f"only names the label of folders without a description.")
    frames = {}
    for split in ("train", "test"):
        path = split_path(folder, split) if entry.get("inferred") else os.path.join(folder, f"{split}.parquet")
        if not path or not os.path.isfile(path):
            raise SchemaError(f"Data set '{name}': '{path or os.path.join(folder, split + '.parquet')}' does not "
                              f"exist.")
        frames[split] = read_table(path)[0]
    train, test = frames["train"], frames["test"]
    label = entry.get("label")
    if not label or label not in train.columns or label not in test.columns:
        raise SchemaError(f"Data set '{name}': label {label!r} must be a column of its train and test splits.")
    if entry.get("inferred"):
        entry.update(_inferred_entry(train, str(label)))
    columns = [str(c) for c in train.columns]
    images = _columns(entry, "image_columns", columns)
    texts = _columns(entry, "text_columns", columns)
    if entry.get("tabular_columns") is not None:
        tabular = _columns(entry, "tabular_columns", columns)
    else:
        tabular = [c for c in columns if c != label and c not in images and c not in texts]
    problem_type = entry.get("problem_type")
    if not problem_type:
        from ..schema.infer import infer_problem_type

        problem_type = infer_problem_type(train[label])
    metric = entry.get("metric")
    if not metric:
        from ..train.metrics import DEFAULT_METRIC

        metric = DEFAULT_METRIC[problem_type]
    present = {"image": images, "text": texts, "tabular": tabular}
    modalities = [m for m in MODALITY_ORDER if m in (entry.get("modalities") or [k for k, v in present.items() if v])]
    return BenchDataset(name=name, train=train, test=test, base_dir=folder, label=str(label),
                        problem_type=str(problem_type), metric=str(metric), modalities=modalities,
                        image_columns=images, text_columns=texts, tabular_columns=tabular, entry=entry)


def _inferred_entry(train: "pd.DataFrame", label: str) -> dict[str, Any]:
    """Columns, problem type and metric of an undescribed data set, as the predictor infers them."""
    from ..schema.infer import infer_schema
    from ..train.metrics import DEFAULT_METRIC

    schema = infer_schema(train, label)
    return {"problem_type": schema.problem_type, "metric": DEFAULT_METRIC[schema.problem_type],
            "image_columns": schema.columns("image"), "text_columns": schema.columns("text"),
            "tabular_columns": [c for c, kind in schema.column_kinds.items() if kind in ("numerical", "categorical")]}


def subsample_train(ds: BenchDataset, max_rows: Optional[int], seed: int) -> "pd.DataFrame":
    """At most ``max_rows`` train rows (stratified for classification), the same for a given seed."""
    from ..data.split import subsample

    train = ds.train[ds.train[ds.label].notna()]
    return subsample(train, ds.label, max_rows, ds.problem_type != "regression", seed).reset_index(drop=True)
