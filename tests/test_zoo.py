"""Tests of the offline model zoo (mmtricks.zoo)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmtricks.errors import BackboneError
from mmtricks.zoo import (
    create_image_backbone,
    efficientnet_lite0_state_dict,
    image_data_config,
    list_zoo,
    resolve_text_backbone,
)

torch.set_num_threads(1)

# ImageNet-1k classes accepted for the photos scikit-image ships.
PHOTOS = {
    "chelsea": {281, 282, 283, 284, 285},  # tabby / tiger / Persian / Siamese / Egyptian cat
    "coffee": {504, 967, 968},  # coffee mug / espresso / cup
    "rocket": {657, 744, 812},  # missile / projectile / space shuttle
}


@pytest.fixture(scope="module")
def lite0_classifier():
    """The zoo's EfficientNet-Lite0 with its ImageNet classifier kept."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    model.load_state_dict(efficientnet_lite0_state_dict(), strict=True)
    return model.eval()


def test_list_zoo_names():
    zoo = list_zoo()
    assert {"minilm-l6", "efficientnet-lite0"} <= set(zoo)
    assert all(isinstance(d, str) and d and "\n" not in d for d in zoo.values())


def test_lite0_state_dict_covers_every_tensor(lite0_classifier):
    state = efficientnet_lite0_state_dict()
    own = lite0_classifier.state_dict()
    assert set(state) == set(own)
    assert all(state[k].shape == own[k].shape for k in own)
    # BN buffers are real statistics, not the defaults (0 mean, 1 var).
    assert not torch.allclose(state["bn1.running_mean"], torch.zeros(32))
    assert not torch.allclose(state["blocks.6.0.bn3.running_var"], torch.ones(320))


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_lite0_classifies_real_photos(lite0_classifier, photo):
    import skimage.data
    from PIL import Image
    from timm.data import create_transform

    backbone = create_image_backbone("efficientnet-lite0")
    cfg = image_data_config(backbone)
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5)
    image = Image.fromarray(getattr(skimage.data, photo)()).convert("RGB")
    x = create_transform(**cfg)(image).unsqueeze(0)
    with torch.no_grad():
        logits = lite0_classifier(x)[0]
        features = backbone.eval()(x)[0]
    top5 = logits.topk(5).indices.tolist()
    assert top5[0] in PHOTOS[photo], (photo, top5)
    # The backbone is the classifier's trunk: its features give the same logits.
    head = lite0_classifier.get_classifier()
    torch.testing.assert_close(head(features), logits, rtol=1e-4, atol=1e-4)


def test_lite0_backbone_features():
    model = create_image_backbone("efficientnet-lite0").eval()
    assert model.num_features == 1280
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, model.num_features)
    assert torch.isfinite(out).all()
    cfg = image_data_config(model)
    assert cfg["input_size"] == (3, 224, 224)
    assert set(cfg) == {"input_size", "mean", "std", "interpolation", "crop_pct"}
    assert image_data_config(create_image_backbone("efficientnet-lite0", pretrained=False)) == cfg


def test_minilm_loads_offline(monkeypatch):
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    folder = resolve_text_backbone("minilm-l6")
    assert Path(folder).is_absolute() and (Path(folder) / "config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    assert model.config.hidden_size == 384
    batch = tokenizer(["a cat on a sofa", "espresso"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape[0] == 2 and hidden.shape[-1] == 384


def test_text_names(tmp_path):
    assert resolve_text_backbone(str(tmp_path)) == str(tmp_path.resolve())
    assert resolve_text_backbone("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert resolve_text_backbone("bert-base-uncased") == "bert-base-uncased"


@pytest.mark.parametrize("name", ["./no_such_model", "/no/such/folder", "~/no_such_model_x", "a/b/c"])
def test_missing_path_raises(name):
    with pytest.raises(BackboneError, match=name.replace(".", r"\.")):
        resolve_text_backbone(name)
    with pytest.raises(BackboneError, match=name.replace(".", r"\.")):
        create_image_backbone(name)


def test_local_safetensors_round_trip(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    file = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(file))  # classifier 'fc.*' included: it is dropped
    model = create_image_backbone(f"resnet18@{file}").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.forward_head(source.forward_features(x), pre_logits=True))
    assert model.num_features == 512
    # pretrained=False rebuilds the architecture only: the file is neither read nor needed.
    bare = create_image_backbone(f"resnet18@{tmp_path / 'gone.safetensors'}", pretrained=False)
    assert bare.num_features == 512 and image_data_config(bare) == image_data_config(model)


def test_local_pth_mismatch_raises(tmp_path):
    import timm

    file = tmp_path / "w.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), file)
    with pytest.raises(BackboneError, match="w.pth"):
        create_image_backbone(f"resnet34@{file}")
    with pytest.raises(BackboneError, match="does not exist"):
        create_image_backbone(f"resnet18@{tmp_path / 'missing.safetensors'}")


@pytest.mark.parametrize("how", ["minimal", "save_for_hf"])
def test_local_timm_folder(tmp_path, how):
    import json

    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False).eval()
    if how == "minimal":
        (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 1000}))
        save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    else:
        from timm.models import save_for_hf

        source.pretrained_cfg = {**source.pretrained_cfg, "mean": (0.1, 0.2, 0.3)}
        save_for_hf(source, str(tmp_path), safe_serialization=True)
    model = create_image_backbone(str(tmp_path)).eval()
    if how == "save_for_hf":
        assert image_data_config(model)["mean"] == (0.1, 0.2, 0.3)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.forward_head(source.forward_features(x), pre_logits=True))


def test_hub_failure_and_unknown_name(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(BackboneError, match="could not be downloaded.*efficientnet-lite0"):
        create_image_backbone("resnet18")
    with pytest.raises(BackboneError, match="hf-hub:timm/resnet18.a1_in1k.*could not be downloaded"):
        create_image_backbone("hf-hub:timm/resnet18.a1_in1k")
    with pytest.raises(BackboneError, match="resnet81"):
        create_image_backbone("resnet81")
