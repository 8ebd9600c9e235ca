"""The basic tricks: soup, gradient clipping, warmup + cosine, layer-wise lr decay."""
import math

import pytest
import torch
from torch import nn

from mmtricks.config import resolve
from mmtricks.train.checkpoint import CheckpointRecord, save_state
from mmtricks.train.soup import average_states, make_soup
from mmtricks.train.tricks.grad_clip import clip_gradients
from mmtricks.train.tricks.layer_decay import param_groups
from mmtricks.train.tricks.schedule import WarmupCosine


def _records(tmp_path, states, scores):
    recs = []
    for i, (state, score) in enumerate(zip(states, scores)):
        path = str(tmp_path / f"{i}.safetensors")
        save_state(state, path)
        recs.append(CheckpointRecord(path, score, i))
    return recs


def test_soup_of_two_states_is_their_mean(tmp_path):
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    torch.testing.assert_close(average_states([a, b])["w"], torch.tensor([2.0, 4.0]))
    assert average_states([a, b])["n"].item() == 3  # integer buffers are not averaged
    state, info = make_soup(_records(tmp_path, [a, b], [0.9, 0.8]), "uniform", lambda s: 0.5, lambda x, y: x > y)
    torch.testing.assert_close(state["w"], torch.tensor([2.0, 4.0]))
    assert info["members"] == [0, 1]


def test_greedy_soup_keeps_helpful_and_rejects_harmful_checkpoints(tmp_path):
    best = {"w": torch.tensor([1.0])}
    good = {"w": torch.tensor([1.2])}
    bad = {"w": torch.tensor([9.0])}

    def evaluate(state):  # validation score peaks at w = 1.1
        return -abs(state["w"].item() - 1.1)

    recs = _records(tmp_path, [best, good, bad], [-0.1, -0.1, -7.9])
    state, info = make_soup(recs, "greedy", evaluate, lambda x, y: x > y)
    assert info["members"] == [0, 1]  # 'bad' would have made validation worse
    torch.testing.assert_close(state["w"], torch.tensor([1.1]))
    assert info["score"] == pytest.approx(0.0, abs=1e-6)


def test_best_soup_is_the_best_checkpoint_unchanged(tmp_path):
    states = [{"w": torch.tensor([float(i)])} for i in range(3)]
    state, info = make_soup(_records(tmp_path, states, [0.9, 0.5, 0.1]), "best", lambda s: 0.0, lambda x, y: x > y)
    assert state["w"].item() == 0.0 and info["members"] == [0]


def _fabric():
    from lightning_fabric import Fabric

    return Fabric(accelerator="cpu", devices=1, precision="32-true")


def _global_norm(model):
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()


def test_clipping_caps_the_global_norm_and_can_be_off():
    fabric = _fabric()
    for max_norm in (1.0, None):
        torch.manual_seed(0)
        linear = nn.Linear(8, 4)
        model, opt = fabric.setup(linear, torch.optim.SGD(linear.parameters(), lr=0.1))
        fabric.backward((model(torch.randn(16, 8)) * 100).pow(2).sum())
        before = _global_norm(model)
        returned = clip_gradients(fabric, model, opt, max_norm)
        assert before > 10
        if max_norm is None:
            assert returned is None and _global_norm(model) == pytest.approx(before)
        else:
            assert returned.item() == pytest.approx(before, rel=1e-4)
            assert _global_norm(model) == pytest.approx(1.0, rel=1e-3)


def test_warmup_then_cosine_to_zero():
    s = WarmupCosine(total_steps=100, warmup_fraction=0.1)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(1.0)
    assert s(55) == pytest.approx(0.5)
    assert s(100) == pytest.approx(0.0, abs=1e-12)
    s.set_horizon(50)  # a time limit shortens the run: it still anneals to zero
    assert s(50) == pytest.approx(0.0, abs=1e-12)
    off = WarmupCosine(total_steps=100, warmup_fraction=0.0, schedule="constant")
    assert [off(i) for i in (0, 50, 100)] == [1.0, 1.0, 1.0]


def _net(encoders):
    from mmtricks.models.net import MultimodalNet

    return MultimodalNet(encoders, "mlp", {"adapter_dim": 8, "hidden": 8}, 3)


def _encoder_families():
    from mmtricks.models.registry import create_encoder

    return {
        "tabular": create_encoder("ft_transformer", n_num=2, cardinalities=[3], token_dim=8, n_blocks=2, n_heads=2),
        "text": create_encoder("hf_text", backbone="minilm-l6", pretrained=False, tiny=True),
        "image": create_encoder("timm_image", backbone="test_efficientnet", pretrained=False),
    }


@pytest.mark.parametrize("decay", [0.9, 1.0])
def test_layer_decay_groups_carry_lr_times_decay_to_the_depth(decay):
    encoders = _encoder_families()
    net = _net(encoders)
    groups = param_groups(net, lr=1e-3, weight_decay=0.01, layer_decay=decay, head_lr_mult=1.0)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len([p for p in net.parameters()])  # each parameter once
    for g in groups:
        assert g["lr"] == pytest.approx(1e-3 * decay ** g["depth"])
        assert g["weight_decay"] == (0.0 if g["name"].endswith(".no_wd") else 0.01)
    for modality, enc in encoders.items():
        depths = {g["depth"] for g in groups if g["name"].startswith(modality + ".")}
        assert depths == set(range(1, len(enc.depth_groups()) + 1))
        assert len(enc.depth_groups()) >= 3  # a real layer structure, not one lump
    head = [g for g in groups if g["name"].startswith("fusion_head")]
    assert head and all(g["depth"] == 0 for g in head)


def test_text_depth_groups_put_embeddings_deepest():
    enc = _encoder_families()["text"]
    groups = enc.depth_groups()
    names = {id(p): n for n, p in enc.model.named_parameters()}
    assert all("embed" in names[id(p)] for p in groups[-1])
    assert any("layer.1." in names[id(p)] for p in groups[0])


def test_every_basic_trick_switches_off():
    o = resolve("baseline").optim
    assert o.soup == "best" and o.grad_clip is None and o.layer_decay == 1.0
    s = WarmupCosine(100, o.warmup_fraction, o.schedule)
    assert {s(i) for i in range(0, 101, 10)} == {1.0}
    assert math.isclose(resolve("baseline+warmup").optim.warmup_fraction, 0.1)


def test_small_training_sets_get_the_step_floor():
    from mmtricks.train.loop import plan_batches

    o = resolve("default").optim  # batch 128, micro 32, 20 epochs, at least 128 steps
    assert plan_batches(100_000, o) == (32, 4)  # the reference effective batch of 128
    assert plan_batches(405, o) == (32, 2)  # 405 rows x 20 epochs / 128 steps: batch 63 -> two micro batches of 32
    assert plan_batches(200, o) == (31, 1)  # 200 x 20 / 128 = 31 rows a step: less than one micro batch

    assert plan_batches(50, o) == (7, 1)  # 50 x 20 / 128 = 7 rows a step (a tenth of the rows, 5, is the lowest)
    o.min_steps = 0
    assert plan_batches(405, o) == (32, 4)
