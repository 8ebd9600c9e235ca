"""Input-level augmentation (SPEC section 3): images, text and numbers of training rows, in the loader.

Hook ``input_aug`` works on the data side, where the loader (and its workers) build each
training row, not in the training loop:

* **Images**: TrivialAugment-Wide (torchvision) on the training image as uint8 at the
  chosen size (after the per-fit cache), before normalisation.
* **Text**: a text column of 10 or more words gets one op drawn from identity, synonym
  replacement, random deletion, random swap and punctuation insertion, with strength
  ~ U[0, 0.1] (the share of words touched, at least one), on the raw string, which is then
  tokenised (only for the rows and columns it changed). Synonyms come from WordNet through
  nltk, read from a local copy of Debian's ``wordnet-base`` + ``wordnet-sense-index``
  (:func:`wordnet`); without it, synonym replacement becomes identity, with one warning.
* **Numbers** (``tricks.aug_numeric_noise``, 0 = off): Gaussian noise of that standard
  deviation on the standardised numbers that are present.

Every draw comes from ``(seed, epoch, row)`` (a row's image column and text column add
their index), so a loader worker or a resumed fit repeats exactly the same augmentation.
"""
from __future__ import annotations

import os
import shutil
import warnings
import zlib
from typing import Callable, Optional

import numpy as np

from .hooks import HOOKS, TrainingHook

TEXT_OPS = ("identity", "synonym", "delete", "swap", "punctuation")
MIN_WORDS = 10
MAX_STRENGTH = 0.1
PUNCTUATION = (".", ",", "!", "?", ";", ":")
WORDNET_SOURCES = ("/usr/share/wordnet",)  # Debian: wordnet-base (+ index.sense from wordnet-sense-index)

_WORDNET: dict = {}
# WordNet 3.0's lexicographer files (lexnames(5WN)), which nltk's reader opens: Debian installs the
# man page but not the file, so the copy gets it written from this table (number, name, part of speech).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def _write_lexnames(folder: str) -> None:
    with open(os.path.join(folder, "lexnames"), "w", encoding="ascii") as fh:
        for i, name in enumerate(LEXNAMES):
            fh.write(f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n")


def wordnet():
    """nltk's WordNet reader over a local WordNet 3.0, or None (one warning) when there is none.

    nltk only opens corpora under its data path, laid out as ``<root>/corpora/wordnet``: the
    Debian files are copied once into ``$MMTRICKS_CACHE`` (default ``~/.cache/mmtricks``)
    ``/nltk_data/corpora/wordnet``, or an nltk data folder that already holds WordNet is used.
    """
    if "reader" in _WORDNET:
        return _WORDNET["reader"]
    reader, why = None, None
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        why = "nltk is not installed (pip install 'mmtricks[text-aug]')"
    else:
        root = os.path.join(os.environ.get("MMTRICKS_CACHE", os.path.expanduser("~/.cache/mmtricks")), "nltk_data")
        target = os.path.join(root, "corpora", "wordnet")
        source = next((s for s in WORDNET_SOURCES if os.path.isfile(os.path.join(s, "data.noun"))), None)
        if not os.path.isfile(os.path.join(target, "data.noun")) and source is not None:
            os.makedirs(target, exist_ok=True)
            for name in os.listdir(source):
                if os.path.isfile(os.path.join(source, name)):
                    shutil.copy(os.path.join(source, name), target)
        if os.path.isfile(os.path.join(target, "data.noun")) and not os.path.isfile(os.path.join(target, "lexnames")):
            _write_lexnames(target)
        if root not in nltk.data.path:
            nltk.data.path.append(root)
        try:
            reader = WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)
            reader.synsets("dog")  # reads the index: fails now rather than in a loader worker
        except (LookupError, OSError) as exc:
            why = f"no WordNet found ({type(exc).__name__}); on Debian: apt-get install wordnet-base " \
                  "wordnet-sense-index"
            reader = None
    if reader is None:
        warnings.warn(f"Text augmentation: synonym replacement is off, {why}.", stacklevel=2)
    _WORDNET["reader"] = reader
    return reader


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def augment_text(text: str, rng: np.random.Generator, synonyms: Optional[Callable[[str], list[str]]] = None) -> str:
    """One op from :data:`TEXT_OPS` on ``text`` when it has :data:`MIN_WORDS` words or more."""
    words = text.split()
    if len(words) < MIN_WORDS:
        return text
    op = TEXT_OPS[int(rng.integers(len(TEXT_OPS)))]
    k = max(1, int(round(rng.uniform(0, MAX_STRENGTH) * len(words))))
    picks = sorted(rng.choice(len(words), size=min(k, len(words)), replace=False).tolist())
    if op == "synonym" and synonyms is not None:
        for i in picks:
            options = [s for s in synonyms(words[i]) if s.lower() != words[i].lower()]
            if options:
                words[i] = options[int(rng.integers(len(options)))]
    elif op == "delete":
        words = [w for i, w in enumerate(words) if i not in set(picks)]
    elif op == "swap":
        for i in picks:
            j = int(rng.integers(len(words)))
            words[i], words[j] = words[j], words[i]
    elif op == "punctuation":
        for offset, i in enumerate(picks):
            words.insert(i + offset, PUNCTUATION[int(rng.integers(len(PUNCTUATION)))])
    return " ".join(words)


def wordnet_synonyms(reader) -> Callable[[str], list[str]]:
    def synonyms(word: str) -> list[str]:
        names = {lemma.name().replace("_", " ") for syn in reader.synsets(word) for lemma in syn.lemmas()}
        return sorted(names)

    return synonyms


class ImageAugment:
    """uint8 (3, S, S) -> uint8 (3, S, S): TrivialAugment-Wide, drawn from (seed, epoch, row, column)."""

    def __init__(self, seed: int):
        from torchvision import transforms as T

        self.seed, self.transform = int(seed), T.TrivialAugmentWide()

    def __call__(self, image, key: tuple = ()):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(repr((self.seed, *key)).encode()))
            return self.transform(image)


class RowAugment:
    """Row hook of the training set: text ops on the raw strings, then their tokens; number noise."""

    def __init__(self, seed: int, text_processor=None, texts: Optional[list] = None, numeric_noise: float = 0.0):
        self.seed, self.text, self.texts, self.noise = int(seed), text_processor, texts, float(numeric_noise)
        reader = wordnet() if texts is not None else None
        self.synonyms = wordnet_synonyms(reader) if reader is not None else None

    def __call__(self, row: dict, epoch: int = 0, index: int = 0) -> dict:
        if self.noise > 0 and len(row["num"]):
            rng = _rng(self.seed, epoch, index, 0)
            present = ~row["num_missing"]
            row["num"] = row["num"] + present * rng.normal(0, self.noise, len(row["num"])).astype(row["num"].dtype)
        if self.texts is not None and row["text"] is not None:
            cols = list(row["text"])
            for j, raw in enumerate(self.texts[index]):
                if not len(cols[j]):  # missing or dropped (modality dropout ran first)
                    continue
                new = augment_text(raw, _rng(self.seed, epoch, index, 1 + j), self.synonyms)
                if new != raw:
                    cols[j] = self.text.tokenize_one(new)
            row["text"] = cols
        return row


@HOOKS.register("input_aug")
class InputAugmentation(TrainingHook):
    """Nothing to do in the loop: :meth:`data_transforms` gives the training set its augmentation."""

    name = "input_aug"

    @staticmethod
    def data_transforms(cfg, pre, texts: Optional[list], seed: int) -> dict:
        """``row_hook`` and ``image_augment`` for the training dataset (``texts``: its raw text cells)."""
        out: dict = {}
        if pre.image is not None:
            out["image_augment"] = ImageAugment(seed)
        if pre.text is not None or cfg.tricks.aug_numeric_noise > 0:
            out["row_hook"] = RowAugment(seed, pre.text, texts if pre.text is not None else None,
                                         cfg.tricks.aug_numeric_noise)
        return out

