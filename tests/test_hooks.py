"""Training hooks: the protocol, the alignment losses, manifold mixup; hooks in real fits."""
import numpy as np
import pytest
import torch

from mmtricks.config import resolve
from mmtricks.errors import ConfigError
from mmtricks.models.net import MultimodalNet
from mmtricks.models.registry import create_encoder
from mmtricks.train.loop import loss_fn
from mmtricks.train.tricks.align import infonce_alignment, kl_alignment
from mmtricks.train.tricks.hooks import HookContext, build_hooks, list_hooks, step_loss

from conftest import make_table

B = 8


def _net(fusion="mlp"):
    torch.manual_seed(0)
    encoders = {
        "tabular": create_encoder("ft_transformer", n_num=2, cardinalities=[3], token_dim=16, n_blocks=2, n_heads=2),
        "text": create_encoder("hf_text", backbone="minilm-l6", pretrained=False, tiny=True),
        "image": create_encoder("timm_image", backbone="test_efficientnet", pretrained=False, n_tokens=2),
    }
    kwargs = {"adapter_dim": 16, "hidden": 16, "n_blocks": 1, "n_heads": 2, "max_tokens": 256}
    return MultimodalNet(encoders, fusion, {k: kwargs[k] for k in kwargs if k in _keys(fusion)}, 3)


def _keys(fusion):
    from mmtricks.models.registry import fusion_class

    return fusion_class(fusion).config_keys


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "row": torch.arange(B) + 100, "num": torch.randn(B, 2, generator=g),
        "num_missing": torch.zeros(B, 2, dtype=torch.bool), "cat": torch.randint(0, 3, (B, 1), generator=g),
        "text_ids": torch.randint(1000, 2000, (B, 7), generator=g), "text_mask": torch.ones(B, 7, dtype=torch.long),
        "image": torch.randn(B, 2, 3, 32, 32, generator=g), "image_missing": torch.zeros(B, 2, dtype=torch.bool),
        "label": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]),
    }


def test_kl_alignment_is_zero_for_identical_features_and_positive_otherwise():
    f = torch.randn(B, 16)
    assert kl_alignment({"text": f, "image": f.clone(), "tabular": f.clone()}).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_alignment({"text": f, "image": torch.randn(B, 16)}).item() > 0.01
    assert kl_alignment({"text": f}).item() == 0.0  # one modality: nothing to align


def test_infonce_is_lower_for_aligned_pairs_than_for_shuffled_ones():
    torch.manual_seed(0)
    text = torch.randn(B, 16)
    image = text + 0.1 * torch.randn(B, 16)  # row i of image matches row i of text
    aligned = infonce_alignment({"text": text, "image": image}, temperature=0.1)
    shuffled = infonce_alignment({"text": text, "image": image[torch.randperm(B)]}, temperature=0.1)
    assert aligned.item() < 0.1 < shuffled.item()


def _ctx(cfg, net, problem_type="multiclass"):
    return HookContext(seed=3, problem_type=problem_type, criterion=loss_fn(problem_type), net=net)


def _run(net, cfg, batch, ctx=None):
    import contextlib

    hooks = build_hooks(cfg, "multiclass", 3, net)
    ctx = ctx or _ctx(cfg, net)
    with contextlib.ExitStack() as around:
        for h in hooks:
            around.enter_context(h.around_forward(net, batch, ctx))
        out = net(batch)
    return out, step_loss(hooks, out, batch, ctx), hooks


def test_alignment_hooks_add_their_terms_to_the_task_loss():
    net = _net().eval()
    batch = _batch()
    plain_out, plain, _ = _run(net, resolve("tiny"), batch)
    cfg = resolve("tiny", {"tricks.hooks": "align_kl,align_infonce", "tricks.align_infonce_weight": 0.5})
    out, both, _ = _run(net, cfg, batch)
    expected = plain + kl_alignment(out["modality"]) + 0.5 * infonce_alignment(out["modality"], 0.1)
    assert both.item() == pytest.approx(expected.item(), rel=1e-5) and both.item() > plain.item()


class _Place:
    """Stands in for the mixup's generator of places: random() < 0.5 mixes at the fusion."""

    def __init__(self, at_fusion: bool):
        self.at_fusion = at_fusion

    def random(self):
        return 0.0 if self.at_fusion else 0.9

    def integers(self, n):
        return n - 1  # each encoder's last mix point


def _fixed_draw(monkeypatch, lam, at_fusion, perm):
    from mmtricks.train.tricks.mixup import ManifoldMixup

    monkeypatch.setattr(ManifoldMixup, "draw", lambda self, batch, ctx: (lam, perm, _Place(at_fusion)))


@pytest.mark.parametrize("at_fusion", [True, False])
def test_mixup_with_lambda_one_is_the_identity(monkeypatch, at_fusion):
    net = _net().eval()
    batch = _batch()
    plain_out, plain, _ = _run(net, resolve("tiny"), batch)
    _fixed_draw(monkeypatch, 1.0, at_fusion, torch.randperm(B))
    out, mixed, _ = _run(net, resolve("tiny", {"tricks.hooks": "manifold_mixup"}), batch)
    torch.testing.assert_close(out["logits"], plain_out["logits"], rtol=0, atol=0)
    assert mixed.item() == plain.item()


def test_mixup_at_the_fusion_mixes_features_and_targets(monkeypatch):
    net = _net().eval()
    batch, perm = _batch(), torch.randperm(B, generator=torch.Generator().manual_seed(1))
    plain_out, _, _ = _run(net, resolve("tiny"), batch)
    _fixed_draw(monkeypatch, 0.3, True, perm)
    out, loss, _ = _run(net, resolve("tiny", {"tricks.hooks": "manifold_mixup"}), batch)
    torch.testing.assert_close(out["features"], 0.3 * plain_out["features"] + 0.7 * plain_out["features"][perm])
    ce = torch.nn.functional.cross_entropy
    expected = 0.3 * ce(out["logits"], batch["label"]) + 0.7 * ce(out["logits"], batch["label"][perm])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_mixup_inside_the_encoders_mixes_every_modality(monkeypatch):
    net = _net().eval()
    batch, perm = _batch(), torch.arange(B).roll(1)
    _fixed_draw(monkeypatch, 0.5, False, perm)
    seen = {}
    for m, enc in net.encoders.items():
        enc.register_forward_hook(lambda mod, args, out, m=m: seen.setdefault(m, out.detach().clone()))
    _run(net, resolve("tiny", {"tricks.hooks": "manifold_mixup"}), batch)
    mixed = dict(seen)
    seen.clear()
    swapped = {k: (v[perm] if torch.is_tensor(v) and len(v) == B else v) for k, v in batch.items()}
    _run(net, resolve("tiny"), batch)
    first = dict(seen)
    seen.clear()
    _run(net, resolve("tiny"), swapped)
    for m in net.encoders:  # the last layer mixed: the encoder's output is the mix of both rows' outputs
        if m == "text":  # a transformer's last block is followed by mean pooling: linear, so exact
            torch.testing.assert_close(mixed[m], 0.5 * first[m] + 0.5 * seen[m], rtol=1e-4, atol=1e-5)
        assert not torch.allclose(mixed[m], first[m])  # every modality was mixed


def test_mixup_draws_repeat_for_the_same_rows_and_step():
    from mmtricks.train.tricks.mixup import ManifoldMixup

    cfg = resolve("tiny", {"tricks.hooks": "manifold_mixup"})
    hook = ManifoldMixup(cfg, "multiclass", 3)
    ctx = _ctx(cfg, None)
    a, b = hook.draw(_batch(), ctx), hook.draw(_batch(), ctx)
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and 0 < a[0] < 1
    ctx.step = 1
    assert hook.draw(_batch(), ctx)[0] != a[0]


def test_mixup_mixes_regression_targets():
    cfg = resolve("tiny", {"tricks.hooks": "manifold_mixup"})
    from mmtricks.train.tricks.mixup import ManifoldMixup

    hook = ManifoldMixup(cfg, "regression", 1)
    perm = torch.arange(4).flip(0)
    hook.current = (0.25, perm)
    y = torch.tensor([0.0, 1.0, 2.0, 3.0])
    logits = torch.zeros(4, 1)
    loss = hook.task_loss({"logits": logits}, {"label": y}, _ctx(cfg, None, "regression"))
    target = 0.25 * y + 0.75 * y[perm]
    assert loss.item() == pytest.approx(float((target ** 2).mean()))


def test_unknown_and_conflicting_hooks_are_refused():
    with pytest.raises(ConfigError, match="tricks.hooks"):
        resolve("default", {"tricks.hooks": "align_kl,mixup"})
    assert {"align_kl", "align_infonce", "manifold_mixup"} <= set(list_hooks())


@pytest.mark.parametrize("preset", ["align_pos_only", "align_pos_neg", "manifold_mixup", "lemda"])
def test_hook_presets_fit_and_learn(tmp_path, preset):
    from mmtricks import MultimodalPredictor
    from mmtricks.presets import preset_overrides

    df = make_table(str(tmp_path), n=96, kinds=("numerical", "categorical", "text", "image"))
    hooks = preset_overrides(preset)["tricks.hooks"]
    p = MultimodalPredictor(label="y", preset="tiny", verbosity=0,
                            overrides={"tricks.hooks": hooks, "optim.max_epochs": 6})
    p.fit(df, base_dir=str(tmp_path))
    assert p.config_.tricks.hooks == hooks
    assert p.evaluate(df)["accuracy"] > 0.6  # the signal is strong: it still learns with the hook on
    assert np.isfinite([h["loss"] for h in p.fit_info_["history"]]).all()


def test_lemda_trains_its_augmenter_adversarially_and_keeps_its_state():
    from mmtricks.train.tricks.lemda import LeMDA, grad_reverse

    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))  # the reversal: flipped and scaled

    net = _net().train()
    cfg = resolve("tiny", {"tricks.hooks": "lemda", "tricks.lemda_adv_scale": 1.0})
    hooks = build_hooks(cfg, "multiclass", 3, net)
    (lemda,) = hooks
    assert sum(isinstance(m, torch.nn.Linear) for m in lemda.augmenter.modules()) == 6
    ctx = _ctx(cfg, net)
    batch = _batch()
    out = net(batch)
    base = ctx.criterion(out["logits"], batch["label"])
    loss = step_loss(hooks, out, batch, ctx)
    assert loss.item() > base.item()  # the augmented rows' task loss and the regularisers are added
    loss.backward()
    grads = [p.grad for p in lemda.augmenter.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert net.head.weight.grad is not None
    before = [p.detach().clone() for p in lemda.augmenter.parameters()]
    lemda.after_step(ctx)
    assert any(not torch.equal(a, p) for a, p in zip(before, lemda.augmenter.parameters()))  # its own step
    assert all(p.grad is None for p in lemda.augmenter.parameters())
    state = lemda.state_dict()
    again = LeMDA(cfg, "multiclass", 3)
    again.setup(net)
    again.load_state_dict(state)
    for a, b in zip(lemda.augmenter.parameters(), again.augmenter.parameters()):
        assert torch.equal(a, b)
    assert again.optimizer.state_dict()["state"][0]["exp_avg"].equal(lemda.optimizer.state_dict()["state"][0]["exp_avg"])
