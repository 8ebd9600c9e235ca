"""Missing modalities: imputation, modality dropout, learnable missing embeddings."""
import os

import numpy as np
import pytest
import torch

from mmtricks import MultimodalPredictor
from mmtricks.models.registry import create_encoder
from mmtricks.train.tricks.modality_dropout import ModalityDropout

from conftest import make_table

ALL_KINDS = ("numerical", "categorical", "text", "image")


def _holey(folder, n=60):
    df = make_table(folder, n=n, kinds=ALL_KINDS)
    rng = np.random.default_rng(1)
    for col in ("num_a", "num_b", "cat_a", "txt", "img"):
        df.loc[rng.random(n) < 0.3, col] = None
    df.loc[3, "img"] = os.path.join(folder, "images", "absent.png")  # declared as possibly absent
    df.loc[4, ["num_a", "num_b", "cat_a", "txt", "img"]] = None  # every feature missing
    return df


@pytest.mark.parametrize("preset_overrides", [
    {},
    {"data.modality_dropout": 0.3, "tabular.learnable_missing": True, "text.learnable_missing": True,
     "image.learnable_missing": True},
])
def test_frame_with_holes_in_every_kind_trains_and_predicts(table_dir, preset_overrides):
    df = _holey(table_dir)
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                            overrides={"optim.max_epochs": 2, "data.allow_missing_images": True, **preset_overrides})
    p.fit(df)
    proba = p.predict_proba(df)
    assert len(proba) == len(df) and np.isfinite(proba.to_numpy()).all()
    np.testing.assert_allclose(proba.loc[4].sum(), 1.0, atol=1e-5)  # the all-missing row


def test_absent_image_file_is_an_error_unless_allowed(table_dir):
    df = _holey(table_dir)
    with pytest.raises(ValueError, match="absent.png.*allow_missing_images"):
        MultimodalPredictor(label="y", preset="tiny", verbosity=0).fit(df)


def _row(n_num=3, n_cat=2, n_text=2, n_img=2):
    return {
        "num": np.arange(1, n_num + 1, dtype=np.float32),
        "num_missing": np.zeros(n_num, dtype=bool),
        "cat": np.arange(1, n_cat + 1, dtype=np.int64),
        "text": [[5, 6, 7]] * n_text,
        "images": [f"/x/{i}.png" for i in range(n_img)],
    }


def test_dropout_p0_changes_nothing_and_p_high_drops_everything():
    row = _row()
    same = ModalityDropout(0.0)(_row())
    assert all(np.array_equal(same[k], row[k]) for k in ("num", "num_missing", "cat"))
    assert same["text"] == row["text"] and same["images"] == row["images"]
    gone = ModalityDropout(0.999999)(_row())
    assert (gone["num"] == 0).all() and gone["num_missing"].all() and (gone["cat"] == 0).all()
    assert gone["text"] == [[], []] and gone["images"] == [None, None]


def test_dropout_rate_is_p():
    drop = ModalityDropout(0.3, seed=4)
    dropped = np.mean([drop(_row(n_num=50), epoch=e, index=i)["num_missing"].mean()
                       for e in range(4) for i in range(50)])
    assert abs(dropped - 0.3) < 0.02


def test_dropout_draws_derive_from_seed_epoch_and_row():
    def holes(seed, epoch, index):
        return ModalityDropout(0.5, seed=seed)(_row(n_num=40), epoch, index)["num_missing"]

    assert np.array_equal(holes(1, 2, 3), holes(1, 2, 3))  # repeatable: a resumed fit drops the same
    assert not np.array_equal(holes(1, 2, 3), holes(1, 3, 3))  # another epoch, other holes
    assert not np.array_equal(holes(1, 2, 3), holes(1, 2, 4))  # another row
    assert not np.array_equal(holes(1, 2, 3), holes(2, 2, 3))  # another seed


def test_dropout_changes_training_batches_only(table_dir):
    df = make_table(table_dir, n=40, kinds=ALL_KINDS)
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                            overrides={"optim.max_epochs": 1, "data.modality_dropout": 0.5}).fit(df)
    a, b = p.predict_proba(df), p.predict_proba(df)
    assert a.equals(b)  # prediction is deterministic: no dropout at inference
    pre = p.preprocessor_
    enc = pre.encode(df, None, with_labels=True)
    plain = p._dataset(pre, enc)
    dropped = p._dataset(pre, enc, row_hook=ModalityDropout(0.5))
    diff = sum(not torch.equal(plain[i]["cat"], dropped[i]["cat"]) or
               not torch.equal(plain[i]["image_missing"], dropped[i]["image_missing"]) for i in range(len(df)))
    assert diff > 5


def _batch(missing_rows):
    b = 4
    miss = torch.zeros(b, dtype=torch.bool)
    miss[list(missing_rows)] = True
    return {
        "num": torch.randn(b, 2),
        "num_missing": miss.unsqueeze(1).repeat(1, 2),
        "cat": torch.randint(1, 3, (b, 1)),
        "text_ids": torch.randint(1000, 2000, (b, 6)),
        "text_mask": torch.ones(b, 6, dtype=torch.long),
        "text_missing": miss,
        "image": torch.randn(b, 1, 3, 32, 32),
        "image_missing": miss.unsqueeze(1),
    }


ENCODERS = {
    "ft_transformer": lambda: create_encoder("ft_transformer", n_num=2, cardinalities=[3], token_dim=8, n_blocks=1,
                                             n_heads=2, learnable_missing=True),
    "hf_text": lambda: create_encoder("hf_text", backbone="minilm-l6", pretrained=False, tiny=True,
                                      learnable_missing=True),
    "timm_image": lambda: create_encoder("timm_image", backbone="test_efficientnet", pretrained=False,
                                         learnable_missing=True),
}


def _missing_param(enc):
    return enc.tokenizer.num_missing_embed if enc.modality == "tabular" else enc.missing_embed


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_learnable_embeddings_get_gradients_only_from_missing_samples(name):
    torch.manual_seed(0)
    enc = ENCODERS[name]().eval()
    param = _missing_param(enc)
    batch = _batch(missing_rows=[])
    out = enc(batch)
    weight = torch.randn_like(out)  # a generic loss (a plain sum is constant after LayerNorm)
    (out * weight).sum().backward()
    assert param.grad is None or param.grad.abs().sum() == 0  # nothing missing: no gradient
    enc.zero_grad()
    batch = _batch(missing_rows=[1])
    out = enc(batch) * weight  # (B, T, D)
    out[1].sum().backward(retain_graph=True)
    from_missing = param.grad.clone()
    assert from_missing.abs().sum() > 0
    enc.zero_grad()
    out[[0, 2, 3]].sum().backward()  # rows with nothing missing contribute nothing
    assert param.grad is None or param.grad.abs().sum() == 0


def test_a_training_batch_without_any_image_keeps_gradients_finite():
    from mmtricks.models.registry import create_encoder

    enc = create_encoder("timm_image", backbone="test_efficientnet", pretrained=False).train()
    stats = {k: v.clone() for k, v in enc.state_dict().items() if "running" in k}
    batch = {"image": torch.zeros(3, 1, 3, 32, 32), "image_missing": torch.ones(3, 1, dtype=torch.bool)}
    head = torch.nn.Linear(enc.out_dim, 1)
    head(enc(batch)[:, 0]).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
    assert enc.training  # back in training mode
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in stats.items())  # no zero-variance statistics
