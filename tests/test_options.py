"""Typed options: every mode's settings in one dataclass, refused with the field's name."""

from __future__ import annotations

import pytest

from tlviz.errors import BadInput, TlvizError, UnknownName
from tlviz.modes import MODES
from tlviz.options import AugmentConfig, FineTuneOptions, PixelsMLPOptions, ScratchCNNOptions
from tlviz.train import TrainConfig


def test_every_mode_has_options_with_valid_defaults():
    for name, mode in MODES.items():
        opts = mode.options()
        assert opts.mode == name and opts.from_extra({}) == opts


@pytest.mark.parametrize("cls,extra,field", [
    (FineTuneOptions, {"lr": "fast"}, "lr"),
    (FineTuneOptions, {"epochs": 0}, "epochs"),
    (FineTuneOptions, {"epochs": 2.5}, "epochs"),
    (FineTuneOptions, {"patience": True}, "patience"),
    (FineTuneOptions, {"optimizer": "adagrad"}, "optimizer"),
    (FineTuneOptions, {"body_backend": "gpu"}, "body_backend"),
    (FineTuneOptions, {"dropout": 1.0}, "dropout"),
    (FineTuneOptions, {"lr": float("nan")}, "lr"),
    (ScratchCNNOptions, {"image_size": 40}, "image_size"),
    (PixelsMLPOptions, {"hidden": "many"}, "hidden"),
])
def test_a_bad_value_names_its_field(cls, extra, field):
    with pytest.raises(BadInput, match=rf"{cls.mode} option {field} "):
        cls.from_extra(extra)


def test_unknown_options_list_the_known_ones():
    with pytest.raises(UnknownName, match="learning_rate; known: epochs, lr"):
        PixelsMLPOptions.from_extra({"learning_rate": 1})
    assert issubclass(UnknownName, TlvizError)


def test_values_from_json_or_a_form_are_coerced():
    o = FineTuneOptions.from_extra({"lr": "1e-4", "n_trainable_blocks": "2", "patience": None},
                                   epochs=4)
    assert (o.lr, o.n_trainable_blocks, o.patience, o.epochs) == (1e-4, 2, None, 4)


def test_train_config_holds_an_augment_config_and_stores_it_as_a_dict():
    cfg = TrainConfig(mode="scratch-cnn", augment={"rotation_range": 10, "horizontal_flip": True})
    assert isinstance(cfg.augment, AugmentConfig) and cfg.augment.rotation_range == 10.0
    stored = cfg.to_dict()
    assert stored["augment"]["horizontal_flip"] is True
    assert TrainConfig(**stored) == cfg  # a ledger's config rebuilds the same run
    assert TrainConfig(augment={}).augment.is_identity  # {}: explicitly off
    assert TrainConfig().augment is None  # the mode's default
    with pytest.raises(BadInput, match="rotation_range"):
        TrainConfig(augment={"rotation_range": 500})
    with pytest.raises(BadInput, match="augment must be"):
        TrainConfig(augment="book")
    assert cfg.options() == ScratchCNNOptions()
