"""Typed config: presets, dotted overrides, strict keys with suggestions."""
import pytest

from mmtricks.config import MMConfig, all_keys, resolve
from mmtricks.errors import ConfigError
from mmtricks.presets import list_presets


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'optim.lr'"):
        resolve("default", {"optim.lrr": 0.1})


def test_cli_strings_are_coerced_to_field_types():
    cfg = resolve("default", ["optim.lr=3e-4", "optim.grad_clip=none", "text.pretrained=false",
                              "data.image_size=64"])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.optim.grad_clip is None
    assert cfg.text.pretrained is False
    assert cfg.data.image_size == 64


def test_bad_values_are_errors():
    with pytest.raises(ConfigError, match="expects int"):
        resolve("default", {"optim.max_epochs": "many"})
    with pytest.raises(ConfigError, match="Did you mean 'greedy'"):
        resolve("default", {"optim.soup": "greedi"})
    with pytest.raises(ConfigError, match="preset"):
        resolve("defualt")
    with pytest.raises(ConfigError, match="section.key=value"):
        resolve("default", ["optim.lr"])


def test_presets_resolve_and_baseline_turns_the_basic_tricks_off():
    for name in list_presets():
        resolve(name)
    base, plus = resolve("baseline"), resolve("baseline_plus")
    assert (base.optim.soup, base.optim.grad_clip, base.optim.warmup_fraction, base.optim.layer_decay) == \
        ("best", None, 0.0, 1.0)
    assert (plus.optim.soup, plus.optim.grad_clip, plus.optim.warmup_fraction, plus.optim.layer_decay) == \
        ("greedy", 1.0, 0.1, 0.9)
    assert resolve("default").to_dict() == plus.to_dict()


def test_config_round_trips_through_dict():
    cfg = resolve("tiny", {"optim.lr": 0.01})
    assert MMConfig.from_dict(cfg.to_dict()) == cfg
    assert "optim.layer_decay" in all_keys()
