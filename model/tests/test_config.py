from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowers_model.config import TrainConfig, apply_overrides


def test_overrides_are_typed() -> None:
    cfg = apply_overrides(TrainConfig(), ["epochs=3", "--lr=0.01", "hflip=false", "backbone=efficientnet-lite1"])
    assert (cfg.epochs, cfg.lr, cfg.hflip, cfg.backbone) == (3, 0.01, False, "efficientnet-lite1")


def test_config_file_then_command_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 2, "dropout": 0.5}))
    cfg = apply_overrides(TrainConfig(), ["epochs=4"], str(path))
    assert (cfg.epochs, cfg.dropout) == (4, 0.5)


@pytest.mark.parametrize("override", ["epoch=3", "epochs=three", "hflip=maybe", "lr", "epochs=1.5"])
def test_bad_overrides_fail_loudly(override: str) -> None:
    with pytest.raises(SystemExit):
        apply_overrides(TrainConfig(), [override])


def test_wrong_type_in_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": "3"}))
    assert apply_overrides(TrainConfig(), [], str(path)).epochs == 3  # strings are parsed
    path.write_text(json.dumps({"epochs": [3]}))
    with pytest.raises(SystemExit):
        apply_overrides(TrainConfig(), [], str(path))
