"""Average the weights of fine-tuned runs: ``python -m flowers_model.soup --out DIR RUN/best.pt RUN/best.pt ...``.

A "model soup" (Wortsman et al., 2022): runs fine-tuned from the same ImageNet weights with a small learning
rate stay in one basin of the loss, so the average of their weights is one network that is often better than
each, and costs nothing at inference. An ensemble of the same runs would double the per-image time and the
file (issue #16's budgets: 20x the reference's speed, 8 MB). BatchNorm statistics of averaged weights are not
the average of the runs' statistics, so they are measured again on training photos (served views, no
augmentation); both variants are evaluated and reported.

Writes ``DIR/best.pt`` shaped like a training run's (``flowers_model.export`` takes it as it is, and records
the ingredients in the metadata), and ``DIR/soup.json``: validation top-1/top-5/NLL of every ingredient and of
the soup, so the choice is made on validation and written down.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from flowers_model.data import data_dir_or_exit, default_data_dir, load_split
from flowers_model.dataset import ImageDataset
from flowers_model.net import FlowerNet, from_checkpoint
from flowers_model.train import calibrate_temperature, predict_logits, read_history

__all__ = ["average_weights", "main", "make_soup", "remeasure_batchnorm", "scores"]

#: Training photos BatchNorm statistics are measured on: a third of the split gives the same running means to
#: the third decimal and takes a minute on two cores.
DEFAULT_BN_IMAGES = 2048


def _network(checkpoint: dict[str, Any]) -> FlowerNet:
    net = from_checkpoint(checkpoint)
    net.inv_temperature.fill_(1.0)  # each run's temperature is its own; the soup gets one fitted anew
    return net


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same keys and shapes; integer buffers (BatchNorm's batch
    counters) are taken from the first."""
    keys = states[0].keys()
    if any(state.keys() != keys for state in states[1:]):
        raise SystemExit("the checkpoints hold different networks: a soup needs one architecture")
    averaged: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [state[key] for state in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise SystemExit(f"{key} has different shapes across the checkpoints: a soup needs one architecture")
        if tensors[0].is_floating_point():
            averaged[key] = torch.stack(tensors).mean(0)
        else:
            averaged[key] = tensors[0].clone()
    return averaged


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1, top-5 and NLL (at temperature 1) of validation logits."""
    top5 = logits.topk(5, dim=1).indices
    return {
        "top1": round(float((top5[:, 0] == labels).float().mean()), 5),
        "top5": round(float((top5 == labels[:, None]).any(1).float().mean()), 5),
        "nll": round(float(F.cross_entropy(logits, labels)), 5),
    }


def make_soup(
    checkpoints: list[Path], out_dir: Path, data_dir: Path, *, bn_images: int = DEFAULT_BN_IMAGES
) -> dict[str, Any]:
    started = time.time()
    loaded = [torch.load(path, weights_only=False, map_location="cpu") for path in checkpoints]
    first = loaded[0]
    if any(c["class_names"] != first["class_names"] for c in loaded[1:]):
        raise SystemExit("the checkpoints were trained on different class lists")
    size = first["config"]["image_size"]
    if any(c["config"]["image_size"] != size for c in loaded[1:]):
        raise SystemExit("the checkpoints were trained at different input sizes")
    val_loader = DataLoader(ImageDataset(load_split(data_dir, "validation"), size, train=False), batch_size=64)
    labels: torch.Tensor | None = None

    def evaluate(net: FlowerNet, desc: str) -> tuple[torch.Tensor, dict[str, float]]:
        nonlocal labels
        logits, labels = predict_logits(net, val_loader, desc=desc)
        return logits, scores(logits, labels)

    networks = [_network(checkpoint) for checkpoint in loaded]
    ingredients = []
    for path, checkpoint, net in zip(checkpoints, loaded, networks, strict=True):
        _, measured = evaluate(net, path.parent.name)
        name = f"{path.parent.name}/{path.name}"
        ingredients.append({"checkpoint": name, "epoch": checkpoint["epoch"] + 1, **measured})
        print(json.dumps(ingredients[-1]))

    soup = _network(first)
    soup.load_state_dict(average_weights([net.state_dict() for net in networks]))
    averaged_logits, averaged = evaluate(soup, "soup")
    print(json.dumps({"soup": "averaged BatchNorm statistics", **averaged}))
    # BatchNorm statistics measured again under the averaged weights (frozen blocks keep ImageNet's).
    rng = random.Random(0)
    train = load_split(data_dir, "train")
    picked = rng.sample(train, min(bn_images, len(train)))
    remeasured = _network(first)
    remeasured.load_state_dict(soup.state_dict())
    remeasure_batchnorm(remeasured, DataLoader(ImageDataset(picked, size, train=False), batch_size=64))
    remeasured_logits, measured_bn = evaluate(remeasured, "soup, BatchNorm remeasured")
    print(json.dumps({"soup": f"BatchNorm remeasured on {len(picked)} training photos", **measured_bn}))

    # Keep the variant with the lower validation NLL (top-1 over 819 photos moves by single photos).
    use_remeasured = measured_bn["nll"] < averaged["nll"]
    chosen, logits = (remeasured, remeasured_logits) if use_remeasured else (soup, averaged_logits)
    assert labels is not None
    temperature = calibrate_temperature(logits, labels)
    chosen.inv_temperature.fill_(1.0 / temperature)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {**first["config"], "out_dir": str(out_dir)}
    summary = {
        "ingredients": ingredients,
        "soup_averaged_batchnorm": averaged,
        "soup_remeasured_batchnorm": {**measured_bn, "training_photos": len(picked)},
        "batchnorm": "remeasured" if use_remeasured else "averaged",
        "temperature": round(temperature, 5),
        "seconds": round(time.time() - started, 1),
    }
    torch.save(
        {
            "model": chosen.state_dict(),
            "config": config,
            "epoch": max(c["epoch"] for c in loaded),
            "val_top1": (measured_bn if use_remeasured else averaged)["top1"],
            "class_names": first["class_names"],
            "temperature": temperature,
            # What export writes into the metadata (and the card into its recipe): each ingredient's run.
            "soup": [
                {
                    "train_config": c["config"],
                    "best_epoch": c["epoch"] + 1,
                    "training_history": read_history(path.parent),
                }
                for path, c in zip(checkpoints, loaded, strict=True)
            ],
            "soup_summary": summary,
        },
        out_dir / "best.pt",
    )
    (out_dir / "soup.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@torch.no_grad()
def remeasure_batchnorm(net: FlowerNet, loader: DataLoader[Any]) -> None:
    """Running mean and variance of every trained BatchNorm layer, measured anew over ``loader`` (a plain
    average over its batches). ``torch.optim.swa_utils.update_bn`` does this for every layer with the whole
    network in training mode; here the frozen stem and blocks keep ImageNet's statistics (resetting them would
    feed garbage to the layers being measured), and only the measured layers are in training mode: dropout
    and stochastic depth stay off, as they are when the network is served."""
    frozen = {id(m) for module in net.frozen_modules() for m in module.modules()}
    layers = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and id(m) not in frozen]
    momenta = {layer: layer.momentum for layer in layers}
    net.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches
        layer.train()
    for pixels, _ in loader:
        net(pixels)
    for layer, momentum in momenta.items():
        layer.momentum = momentum
    net.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="best.pt of two or more training runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the soup's best.pt and soup.json")
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--bn-images", type=int, default=DEFAULT_BN_IMAGES)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if len(args.checkpoints) < 2:
        parser.error("a soup needs at least two checkpoints")
    torch.set_num_threads(args.threads)
    summary = make_soup(args.checkpoints, args.out, data_dir_or_exit(args.data), bn_images=args.bn_images)
    print(json.dumps({k: v for k, v in summary.items() if k != "ingredients"}))


if __name__ == "__main__":
    main()
