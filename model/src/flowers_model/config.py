"""Training settings: one dataclass, overridable from a JSON file or ``--key=value``.

Like nanoGPT's ``GPTConfig`` + ``configurator.py``, minus the ``exec``: an
unknown key or a value of the wrong type fails loudly, and the final config is
saved inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "apply_overrides"]


@dataclass(frozen=True)
class TrainConfig:
    # data
    data_dir: str = "../shared/datasets/oxford102"  # layout of the official archive + splits.csv
    out_dir: str = "model/runs/lite0"  # checkpoints and logs (git-ignored)
    limit_per_class: int = 0  # >0: keep only this many train images per class (smoke tests)
    # backbone
    backbone: str = "efficientnet-lite0"  # lite0 beat lite2 on a frozen-feature probe (95.5% vs 93.9%)
    image_size: int = 224  # the backbone's native resolution
    freeze_blocks: int = 8  # stem + first N of 16 MBConv blocks stay frozen: at 112-28 px they
    #                         cost most of the compute on CPU (a step takes 1.4 s instead of 3.0 s
    #                         at batch 32 on 2 cores) and generic edges/textures need little tuning
    dropout: float = 0.2  # before the classifier
    drop_connect: float = 0.2  # stochastic depth in the trainable blocks
    # optimisation
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3  # AdamW peak learning rate for the new classifier
    backbone_lr_scale: float = 0.3  # trainable backbone blocks learn at lr * this
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    # augmentation (PIL only: torchvision does not import beside our torch)
    crop_scale_min: float = 0.3  # RandomResizedCrop area range [min, 1]
    hflip: bool = True
    color_jitter: float = 0.2  # brightness/contrast/saturation +-
    # Phone-photo corruptions, each applied with its own probability after the crop: v1 lost
    # 15 points on greyscale photos, 6 on rotated and 5 on blurred ones (issue #16), so v2 sees them.
    greyscale_p: float = 0.0  # drop the colour
    rot90_p: float = 0.0  # rotate by 90, 180 or 270 degrees
    blur_p: float = 0.0  # Gaussian blur, radius 0.3-2.0 px at model resolution
    lowres_p: float = 0.0  # down to 40-128 px and back up: small or heavily downscaled photos
    jpeg_p: float = 0.0  # re-encode as JPEG at quality 10-60
    ema_decay: float = 0.0  # >0: evaluate, keep and export an exponential moving average of the weights
    init_from: str = ""  # a best.pt to start from: progressive unfreezing trains a second stage
    #                      with fewer frozen blocks and a lower learning rate from the first stage's weights
    # run
    seed: int = 42
    threads: int = 2
    max_steps: int = 0  # >0: stop after this many optimiser steps (smoke tests)
    eval_limit: int = 0  # >0: evaluate on this many validation images only


def apply_overrides(cfg: TrainConfig, overrides: list[str], config_file: str | None = None) -> TrainConfig:
    """Return ``cfg`` with values from a JSON file, then ``key=value`` strings."""
    known = {f.name: f for f in fields(TrainConfig)}
    changes: dict[str, Any] = {}
    if config_file:
        for key, value in json.loads(Path(config_file).read_text()).items():
            changes[key] = _coerce(known, key, value)
    for item in overrides:
        key, sep, raw = item.removeprefix("--").partition("=")
        if not sep:
            raise SystemExit(f"override {item!r} is not key=value")
        key = key.replace("-", "_")
        changes[key] = _coerce(known, key, raw)
    return dataclasses.replace(cfg, **changes)


def _coerce(known: dict[str, dataclasses.Field[Any]], key: str, value: Any) -> Any:
    if key not in known:
        raise SystemExit(f"unknown config key {key!r}; known: {', '.join(sorted(known))}")
    default = getattr(TrainConfig(), key)
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise SystemExit(f"{key} wants true/false, got {value!r}")
            return value.lower() in ("true", "1")
        try:
            return kind(value)
        except ValueError:
            raise SystemExit(f"{key} wants {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SystemExit(f"{key} wants {kind.__name__}, got {value!r}")
    return value
