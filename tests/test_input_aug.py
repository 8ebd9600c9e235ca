"""Input-level augmentation: text ops, WordNet synonyms (present or not), images, numbers, a fit."""
import os
import warnings

import numpy as np
import pytest
import torch

from mmtricks.train.tricks import input_aug
from mmtricks.train.tricks.input_aug import ImageAugment, RowAugment, augment_text

from conftest import make_table

LONG = "the quick brown fox jumps over the lazy dog near the quiet river bank today"


def _rng(*key):
    return np.random.default_rng([7, *key])


def test_short_texts_are_left_alone():
    short = "only nine words in this short text right here"
    assert len(short.split()) == 9
    assert all(augment_text(short, _rng(i)) == short for i in range(50))


def test_long_texts_get_one_op_reproducibly():
    outs = [augment_text(LONG, _rng(i)) for i in range(60)]
    assert outs == [augment_text(LONG, _rng(i)) for i in range(60)]  # the same draws, the same text
    words = LONG.split()
    lengths = {len(o.split()) for o in outs}
    assert min(lengths) < len(words) < max(lengths)  # deletions and punctuation insertions both happened
    assert LONG in outs  # identity is one of the ops
    swapped = [o for o in outs if o != LONG and sorted(o.split()) == sorted(words)]
    assert swapped  # a swap keeps the words, in another order
    for o in outs:  # strength <= 0.1 of 15 words: at most 2 words touched
        assert abs(len(o.split()) - len(words)) <= 2


def test_synonym_replacement_uses_the_synonyms_given():
    outs = {augment_text(LONG, _rng(i), synonyms=lambda w: ["SYN"]) for i in range(60)}
    assert any("SYN" in o for o in outs)
    assert not any("SYN" in augment_text(LONG, _rng(i)) for i in range(60))  # without synonyms: identity


def test_wordnet_from_the_debian_files_gives_synonyms(tmp_path, monkeypatch):
    if not os.path.isfile("/usr/share/wordnet/data.noun"):
        pytest.skip("Debian's wordnet-base is not installed (apt-get install wordnet-base wordnet-sense-index)")
    pytest.importorskip("nltk")
    monkeypatch.setenv("MMTRICKS_CACHE", str(tmp_path))
    monkeypatch.setattr(input_aug, "_WORDNET", {})
    reader = input_aug.wordnet()
    assert reader is not None and (tmp_path / "nltk_data" / "corpora" / "wordnet" / "data.noun").is_file()
    assert "automobile" in input_aug.wordnet_synonyms(reader)("car")


def test_without_wordnet_synonyms_are_skipped_with_one_warning(tmp_path, monkeypatch):
    nltk = pytest.importorskip("nltk")
    monkeypatch.setenv("MMTRICKS_CACHE", str(tmp_path))
    monkeypatch.setattr(input_aug, "WORDNET_SOURCES", ())
    monkeypatch.setattr(input_aug, "_WORDNET", {})

    def nowhere(name):
        raise LookupError(name)

    monkeypatch.setattr(nltk.data, "find", nowhere)
    with pytest.warns(UserWarning, match="synonym replacement is off"):
        assert input_aug.wordnet() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert input_aug.wordnet() is None  # once only
    hook = RowAugment(0, text_processor=None, texts=[[LONG]])
    assert hook.synonyms is None


def test_image_augmentation_keeps_shape_and_dtype_and_repeats_under_its_key():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    aug = ImageAugment(seed=3)
    outs = [aug(image, (0, 5, j)) for j in range(8)]
    assert all(o.shape == image.shape and o.dtype == torch.uint8 for o in outs)
    assert torch.equal(aug(image, (0, 5, 2)), outs[2])
    assert sum(not torch.equal(o, image) for o in outs) >= 4  # most draws change the image
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    aug(image, (1, 1, 0))
    assert torch.equal(torch.rand(1), before)  # the global RNG is left as it was


def test_numeric_noise_touches_only_present_numbers_reproducibly():
    hook = RowAugment(1, numeric_noise=0.1)
    row = {"num": np.zeros(4, dtype=np.float32), "num_missing": np.array([False, True, False, False]),
           "cat": np.zeros(0, dtype=np.int64), "text": None, "images": None}
    a = hook({**row, "num": row["num"].copy()}, epoch=2, index=9)
    b = hook({**row, "num": row["num"].copy()}, epoch=2, index=9)
    np.testing.assert_array_equal(a["num"], b["num"])
    assert a["num"][1] == 0 and np.all(a["num"][[0, 2, 3]] != 0) and np.abs(a["num"]).max() < 1
    assert not np.array_equal(hook({**row, "num": row["num"].copy()}, epoch=3, index=9)["num"], a["num"])


def test_input_aug_fit_augments_each_epoch_differently_and_still_learns(tmp_path):
    from mmtricks import MultimodalPredictor

    df = make_table(str(tmp_path), n=96, kinds=("numerical", "text", "image"))
    df["txt"] = [t + " " + LONG for t in df["txt"]]  # long enough for text augmentation
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                            overrides={"tricks.hooks": "input_aug", "tricks.aug_numeric_noise": 0.1,
                                       "optim.max_epochs": 6})
    p.fit(df, base_dir=str(tmp_path))
    assert p.evaluate(df)["accuracy"] > 0.6
    # The training set as the fit built it: epoch 0 and epoch 1 of one row differ; one index repeats.
    from mmtricks.train.tricks.hooks import data_transforms

    pre = p.preprocessor_
    side = data_transforms(p.config_, pre, df, p.seed)
    ds = p._dataset(pre, pre.encode(df, str(tmp_path), with_labels=True), row_hook=side["row_hook"],
                    image_augment=side["image_augment"])
    n = len(ds)
    first, again, later = ds[3], ds[3], ds[n + 3]
    for key in ("image", "num", "text_ids"):
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert not torch.equal(first["image"], later["image"]) or not torch.equal(first["num"], later["num"])
