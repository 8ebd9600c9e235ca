"""The encoder contract (pooled / sequence / embed) and every fusion on every modality mix.

Every registered encoder and fusion must appear here: the factories are checked against the
registries, so a new one without a test fails.
"""
import json
import os

import numpy as np
import pytest
import torch

from mmtricks.models.net import MultimodalNet
from mmtricks.models.registry import create_encoder, list_encoders, list_fusions

B = 6

MIXES = {
    "image+text+tabular": ("tabular", "text", "image"),
    "text+tabular": ("tabular", "text"),
    "image+tabular": ("tabular", "image"),
    "image+text": ("text", "image"),
}


def _batch(seed: int = 0, text_len: int = 9, n_images: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, text_len, dtype=torch.bool)
    mask[::2, text_len - 3:] = False  # padding on every other row
    ids = torch.randint(1000, 2000, (B, text_len), generator=g) * mask
    return {
        "num": torch.randn(B, 2, generator=g), "num_missing": torch.zeros(B, 2, dtype=torch.bool),
        "cat": torch.randint(0, 3, (B, 1), generator=g),
        "text_ids": ids, "text_mask": mask.long(), "text_missing": torch.zeros(B, dtype=torch.bool),
        "image": torch.randn(B, n_images, 3, 32, 32, generator=g),
        "image_missing": torch.zeros(B, n_images, dtype=torch.bool),
    }


ENCODER_FACTORIES = {
    "ft_transformer": lambda: create_encoder("ft_transformer", n_num=2, cardinalities=[3], token_dim=16,
                                             n_blocks=1, n_heads=2),
    "mlp": lambda: create_encoder("mlp", n_num=2, cardinalities=[3], mlp_hidden=16),
    "hf_text": lambda: create_encoder("hf_text", backbone="minilm-l6", pretrained=False, tiny=True),
    "timm_image": lambda: create_encoder("timm_image", backbone="test_efficientnet", pretrained=False,
                                         embed_grid=4),
}
FOR_MODALITY = {"tabular": "ft_transformer", "text": "hf_text", "image": "timm_image"}


def test_every_registered_encoder_is_tested_here():
    assert set(list_encoders()) == set(ENCODER_FACTORIES)


@pytest.mark.parametrize("name", sorted(ENCODER_FACTORIES))
def test_encoder_contract(name):
    torch.manual_seed(0)
    enc = ENCODER_FACTORIES[name]().eval()
    batch = _batch()
    with torch.no_grad():
        pooled = enc(batch)
        out = enc.encode(batch, sequence=True)
        emb = enc.embed(batch)
    assert pooled.shape == (B, enc.n_tokens, enc.out_dim)
    torch.testing.assert_close(out.pooled, pooled)  # asking for the sequence does not change the pooled tokens
    assert out.sequence.dim() == 3 and out.sequence.shape[0] == B and out.sequence.shape[2] == enc.seq_dim
    assert out.mask.dtype == torch.bool and out.mask.shape == out.sequence.shape[:2] and out.mask.any(1).all()
    assert emb.pooled is None and emb.sequence.shape[0] == B and emb.sequence.shape[2] == enc.embed_dim
    assert emb.mask.shape == emb.sequence.shape[:2]
    if enc.modality == "text":  # padding is not a real token
        assert not out.mask[0, -1] and out.mask[1, -1]
    prefix = torch.randn(B, 2, enc.seq_dim)
    if enc.accepts_prefix:
        with torch.no_grad():
            pre = enc.encode(batch, sequence=True, prefix=prefix)
        assert pre.sequence.shape[1] == out.sequence.shape[1] + 2 and pre.mask[:, :2].all()
        assert pre.pooled.shape == pooled.shape
        assert not torch.allclose(pre.pooled, pooled)  # the encoder's layers saw the prefix
    else:
        with pytest.raises(TypeError, match="prefix"):
            enc.encode(batch, sequence=True, prefix=prefix)


def test_image_sequence_and_embed_cover_every_image_column():
    enc = ENCODER_FACTORIES["timm_image"]().eval()
    one, two = _batch(n_images=1), _batch(n_images=2)
    with torch.no_grad():
        s1, s2 = enc.encode(one, sequence=True).sequence, enc.encode(two, sequence=True).sequence
        e1, e2 = enc.embed(one).sequence, enc.embed(two).sequence
    assert s2.shape[1] == 2 * s1.shape[1] and e1.shape[1] == 4 * 4 and e2.shape[1] == 2 * 16


def _encoders(modalities, fusion: str):
    torch.manual_seed(0)
    return {m: ENCODER_FACTORIES[FOR_MODALITY[m]]() for m in modalities}


FUSION_KWARGS = {
    "mlp": {"adapter_dim": 16, "hidden": 16},
    "transformer": {"adapter_dim": 16, "n_blocks": 2, "n_heads": 4},
    "sequential": {"adapter_dim": 16, "n_heads": 4, "order": ["tabular", "text", "image"]},
    "early": {"adapter_dim": 16, "n_blocks": 2, "n_heads": 4, "max_tokens": 256},
}


def test_every_registered_fusion_is_tested_here():
    assert set(list_fusions()) == set(FUSION_KWARGS)


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("fusion", sorted(FUSION_KWARGS))
def test_fusion_trains_and_round_trips(fusion, mix, tmp_path):
    from safetensors.torch import load_file, save_file

    modalities = MIXES[mix]
    net = MultimodalNet(_encoders(modalities, fusion), fusion, FUSION_KWARGS[fusion], n_out=3)
    batch = _batch(seed=1)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    net.train()
    for _ in range(12):  # a learnable toy task: memorise six rows
        out = net(batch)
        loss = torch.nn.functional.cross_entropy(out["logits"], y)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        if not losses:  # the first backward: every modality took part
            for m in modalities:
                grads = [p.grad for p in net.encoders[m].parameters() if p.grad is not None]
                assert grads and any(float(g.abs().sum()) > 0 for g in grads), (fusion, m)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert out["features"].shape == (B, net.fusion.out_dim)
    assert set(out["modality"]) == set(modalities)
    assert all(v.shape[0] == B and torch.isfinite(v).all() for v in out["modality"].values())

    net.eval()
    spec = json.loads(json.dumps(net.spec()))  # plain JSON
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.fspath(tmp_path / "w.safetensors"))
    again = MultimodalNet.from_spec(spec, init_weights=False)
    again.load_state_dict(load_file(os.fspath(tmp_path / "w.safetensors")), strict=True)
    again.eval()
    with torch.no_grad():
        np.testing.assert_array_equal(net(batch)["logits"].numpy(), again(batch)["logits"].numpy())


def test_sequential_fusion_runs_the_encoders_in_its_order():
    calls = []
    encoders = _encoders(("tabular", "text", "image"), "sequential")
    for m, enc in encoders.items():
        original = enc.encode

        def encode(batch, sequence=False, prefix=None, m=m, original=original):
            calls.append(m)
            return original(batch, sequence, prefix)

        enc.encode = encode
    net = MultimodalNet(encoders, "sequential", {**FUSION_KWARGS["sequential"], "order": ["image", "tabular"]}, 2)
    net(_batch())
    assert calls == ["image", "tabular", "text"]  # named first, the rest after


def test_early_fusion_uses_only_the_embedding_layers():
    encoders = _encoders(("tabular", "text", "image"), "early")
    net = MultimodalNet(encoders, "early", FUSION_KWARGS["early"], 2)
    out = net(_batch())
    out["logits"].sum().backward()
    text = net.encoders["text"].model
    assert text.get_input_embeddings().weight.grad is not None
    assert all(p.grad is None for p in text.encoder.parameters())  # the text transformer's layers are not run
    tab = net.encoders["tabular"]
    assert tab.tokenizer.num_weight.grad is not None and all(p.grad is None for p in tab.blocks.parameters())


def test_early_fusion_says_when_a_row_has_too_many_tokens():
    from mmtricks.errors import ConfigError

    net = MultimodalNet(_encoders(("text",), "early"), "early", {**FUSION_KWARGS["early"], "max_tokens": 8}, 2)
    with pytest.raises(ConfigError, match="fusion.max_tokens"):
        net(_batch(text_len=9))

