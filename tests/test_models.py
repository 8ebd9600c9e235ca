"""Every registered encoder and fusion: forward, backward, finite values; spec rebuilds it."""
import pytest
import torch

from mmtricks.models.net import MultimodalNet
from mmtricks.models.registry import create_encoder, list_encoders, list_fusions

B = 4


def _batch():
    g = torch.Generator().manual_seed(0)
    return {
        "num": torch.randn(B, 2, generator=g),
        "num_missing": torch.zeros(B, 2, dtype=torch.bool),
        "cat": torch.randint(0, 3, (B, 1), generator=g),
        "text_ids": torch.randint(1000, 2000, (B, 7), generator=g),
        "text_mask": torch.ones(B, 7, dtype=torch.long),
        "image": torch.randn(B, 2, 3, 32, 32, generator=g),
        "label": torch.tensor([0, 1, 2, 0]),
    }


def _make(name):
    kwargs = {
        "tabular": dict(n_num=2, cardinalities=[3], token_dim=8, n_blocks=1, n_heads=2, mlp_hidden=8),
        "text": dict(backbone="minilm-l6", pretrained=False, tiny=True),
        "image": dict(backbone="test_efficientnet", pretrained=False, n_tokens=2),
    }
    from mmtricks.models.registry import ENCODERS

    return create_encoder(name, **kwargs[ENCODERS.get(name).modality])


@pytest.mark.parametrize("name", list_encoders())
def test_encoder_forward_backward(name):
    enc = _make(name)
    out = enc(_batch())
    assert out.ndim == 3 and out.shape[0] == B and out.shape[2] == enc.out_dim
    assert out.shape[1] == getattr(enc, "n_tokens", 1)
    out.sum().backward()
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", list_fusions())
def test_fusion_and_spec_round_trip(fusion):
    encoders = {"tabular": _make("ft_transformer"), "text": _make("hf_text"), "image": _make("timm_image")}
    net = MultimodalNet(encoders, fusion, {"adapter_dim": 8, "hidden": 8}, 3)
    out = net(_batch())
    assert out["logits"].shape == (B, 3) and torch.isfinite(out["logits"]).all()
    torch.nn.functional.cross_entropy(out["logits"], _batch()["label"]).backward()
    rebuilt = MultimodalNet.from_spec(net.spec())
    rebuilt.load_state_dict(net.state_dict())
    net.eval(), rebuilt.eval()
    torch.testing.assert_close(rebuilt(_batch())["logits"], net(_batch())["logits"])
