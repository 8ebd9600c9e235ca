"""All processors of one model together: fit on train, encode any frame, save as JSON."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from ..schema.infer import Schema
from .processors import CategoricalProcessor, ImageProcessor, LabelProcessor, NumericalProcessor, TextProcessor


@dataclass
class EncodedTable:
    """A frame turned into arrays; images stay paths until the dataset reads them."""

    num: np.ndarray  # (n, n_num) float32
    num_missing: np.ndarray  # (n, n_num) bool
    cat: np.ndarray  # (n, n_cat) int64, 0 = unknown
    text_ids: Optional[list[list[np.ndarray]]]  # per row, per text column: int32 token ids; None without text
    image_paths: Optional[list[list[Optional[str]]]]  # per row per image column
    labels: Optional[np.ndarray]  # (n,) int64 or float32

    def __len__(self) -> int:
        return len(self.num)


TEXT_TEMPLATES = ("{col}: {value}", "{col} is {value}", "{value} & ")  # data.text_template: these, or your own


def input_columns(schema: Schema, tabular_to_text=()) -> dict[str, list[str]]:
    """Feature columns per processor kind; the kinds in ``tabular_to_text`` ('categorical',
    'numerical') move to the text input (``data.tabular_to_text``)."""
    kinds = {k: schema.columns(k) for k in ("numerical", "categorical", "text", "image")}
    for kind in tabular_to_text:
        kinds["text"], kinds[kind] = kinds["text"] + kinds[kind], []
    return kinds


def input_modalities(columns: dict[str, list[str]]) -> list[str]:
    """'tabular', 'text', 'image' that the network gets, in that order."""
    out = ["tabular"] if columns["numerical"] or columns["categorical"] else []
    return out + [k for k in ("text", "image") if columns[k]]


class Preprocessor:
    """Holds the per-kind processors of a fitted model."""

    def __init__(self, schema: Schema, num: NumericalProcessor, cat: CategoricalProcessor,
                 text: Optional[TextProcessor], image: Optional[ImageProcessor], label: LabelProcessor):
        self.schema = schema
        self.num = num
        self.cat = cat
        self.text = text
        self.image = image
        self.label = label

    @classmethod
    def fit(cls, df: pd.DataFrame, schema: Schema, *, tokenizer=None, text_max_length: int = 128,
            image_config: Optional[dict] = None, image_separator: str = ";",
            categorical_max_levels: int = 2000, allow_missing_images: bool = False,
            auto_text_length: bool = False, auto_image_size: bool = False, base_dir: Optional[str] = None,
            seed: int = 0, log: Optional[Callable[[str], None]] = None, tabular_to_text=(),
            text_template: str = TEXT_TEMPLATES[0]) -> "Preprocessor":
        """Fit on the training frame only.

        Args:
            tokenizer: the text encoder's tokenizer (required when there are text columns).
            text_max_length: tokens per row; with ``auto_text_length`` the cap of the length
                chosen from the rows (:meth:`TextProcessor.choose_length`).
            image_config: the image encoder's input config: size, mean, std, interpolation, crop_pct;
                with ``auto_image_size`` the size is chosen from the images
                (:meth:`ImageProcessor.choose_size`, ``size`` then being the largest allowed).
            base_dir: folder relative image paths resolve against (for ``auto_image_size``).
            seed: draws the images whose sizes are read (and the rows whose tokens are counted).
            log: receives one line per size chosen from the data.
            tabular_to_text: 'categorical' and/or 'numerical': those columns become text, rendered
                with ``text_template`` (:func:`~mmtricks.data.processors.render_cells`).
        """
        cols = input_columns(schema, tabular_to_text)
        num = NumericalProcessor(cols["numerical"]).fit(df)
        cat = CategoricalProcessor(cols["categorical"], max_levels=categorical_max_levels).fit(df)
        rendered = {c: {"template": text_template, "numeric": kind == "numerical"}
                    for kind in tabular_to_text for c in schema.columns(kind)}
        text = TextProcessor(cols["text"], tokenizer, text_max_length, rendered) if cols["text"] else None
        if text is not None and auto_text_length:
            note = text.choose_length(df, seed)
            if log is not None:
                log(note)
        image = None
        if schema.columns("image"):
            image = ImageProcessor(schema.columns("image"), separator=image_separator,
                                   allow_missing_files=allow_missing_images, **image_config)
            if auto_image_size:
                note = image.choose_size(df, base_dir, seed)
                if log is not None:
                    log(note)
        label = LabelProcessor(schema.problem_type, classes=schema.classes).fit(df[schema.label])
        return cls(schema, num, cat, text, image, label)

    @property
    def modalities(self) -> list[str]:
        """The network's inputs: 'tabular', 'text', 'image' as these processors make them."""
        return input_modalities({"numerical": self.num.columns, "categorical": self.cat.columns,
                                 "text": self.text.columns if self.text else [],
                                 "image": self.image.columns if self.image else []})

    def encode(self, df: pd.DataFrame, base_dir: Optional[str], with_labels: bool) -> EncodedTable:
        num, num_missing = self.num.transform(df)
        labels = self.label.transform(df[self.schema.label], self.schema.label) if with_labels else None
        return EncodedTable(
            num=num,
            num_missing=num_missing,
            cat=self.cat.transform(df),
            text_ids=self.text.transform(df) if self.text else None,
            image_paths=self.image.transform(df, base_dir) if self.image else None,
            labels=labels,
        )

    def state(self) -> dict:
        return {
            "numerical": self.num.state(),
            "categorical": self.cat.state(),
            "text": self.text.state() if self.text else None,
            "image": self.image.state() if self.image else None,
            "label": self.label.state(),
        }

    @classmethod
    def from_state(cls, schema: Schema, state: dict, tokenizer=None) -> "Preprocessor":
        n, c = state["numerical"], state["categorical"]
        t = state["text"]
        text = TextProcessor(t["columns"], tokenizer, t["max_length"], t.get("rendered")) if t else None
        image = ImageProcessor(**state["image"]) if state["image"] else None
        lab = state["label"]
        return cls(
            schema,
            NumericalProcessor(n["columns"], n["mean"], n["std"]),
            CategoricalProcessor(c["columns"], c["vocab"], c["max_levels"]),
            text,
            image,
            LabelProcessor(lab["problem_type"], lab["classes"], lab["mean"], lab["std"]),
        )


def fit_for_encoders(df: pd.DataFrame, schema: Schema, cfg, encoders: dict, base_dir: Optional[str] = None,
                     seed: int = 0, log: Optional[Callable[[str], None]] = None,
                     tabular_to_text=()) -> Preprocessor:
    """Processors fitted on ``df`` for these text/image ``encoders`` under config ``cfg``: the
    text encoder's tokenizer and length cap, the image encoder's input config, ``data.*``."""
    tokenizer = encoders["text"].tokenizer() if "text" in encoders else None
    image_config = None
    if "image" in encoders:
        image_config = encoders["image"].input_config()
        if cfg.data.image_size:
            image_config["size"], image_config["crop_pct"] = cfg.data.image_size, 1.0
    text_max_length = min(cfg.data.text_max_length, getattr(encoders.get("text"), "max_length", None) or 10**9)
    return Preprocessor.fit(df, schema, tokenizer=tokenizer, text_max_length=text_max_length,
                            image_config=image_config, image_separator=cfg.data.image_separator,
                            categorical_max_levels=cfg.data.categorical_max_levels,
                            allow_missing_images=cfg.data.allow_missing_images,
                            auto_text_length=cfg.data.auto_input_size,
                            auto_image_size=cfg.data.auto_input_size and not cfg.data.image_size,
                            base_dir=base_dir, seed=seed, log=log, tabular_to_text=tabular_to_text,
                            text_template=cfg.data.text_template)
