"""Cheap hyper-parameter sweep on cached features: ``nox -s tune``.

The frozen ImageNet backbone turns every image into a pooled 1,280-d feature
vector once (cached in ``<out>/features-*.npz``); then a small head is trained
on those vectors for each combination of the knobs the reference project
tuned: learning rate, dropout, head size (a hidden layer, as its Dense(1000)),
and augmentation (features of one random crop + flip per image and epoch,
from a few precomputed views, versus the centre crop only). Each run takes
seconds, so the whole grid fits in minutes on 2 cores. Results go to
``<out>/tune.json`` and a markdown table ``<out>/tune.md``; selection is on
validation accuracy.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from flowers_model.data import data_dir_or_exit, default_data_dir, load_split
from flowers_model.dataset import ImageDataset
from flowers_model.net import build_model

__all__ = ["main", "sweep"]


@torch.no_grad()
def extract(data_dir: Path, split: str, *, views: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features, shape (views, n, 1280); view 0 is the serving centre crop, the others augmented."""
    net = build_model("efficientnet-lite0", num_classes=102, dropout=0.0, drop_connect=0.0, freeze_blocks=16).eval()
    backbone = net.backbone
    examples = load_split(data_dir, split)
    out = []
    for view in range(views):
        dataset = ImageDataset(examples, size, train=view > 0, crop_scale_min=0.3, color_jitter=0.2, seed=seed)
        dataset.epoch = view
        feats = []
        for pixels, _ in tqdm(DataLoader(dataset, batch_size=64), desc=f"{split} view {view}", dynamic_ncols=True):
            x = backbone.extract_features((pixels - net.mean) / net.std)
            feats.append(x.mean(dim=(2, 3)))
        out.append(torch.cat(feats).numpy())
    return np.stack(out), np.array([e.class_id for e in examples])


def _train_head(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    *,
    lr: float,
    dropout: float,
    hidden: int,
    augment: bool,
    epochs: int,
    seed: int,
) -> float:
    torch.manual_seed(seed)
    dim = train_x.shape[-1]
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    if hidden:
        layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 102)]
    else:
        layers += [nn.Linear(dim, 102)]
    head = nn.Sequential(*layers)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xs = torch.from_numpy(train_x)
    ys = torch.from_numpy(train_y)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        head.train()
        # With augmentation each image shows one of its augmented views per epoch; without, the centre crop.
        view = (
            torch.from_numpy(rng.integers(1, xs.shape[0], size=xs.shape[1]))
            if augment and xs.shape[0] > 1
            else torch.zeros(xs.shape[1], dtype=torch.long)
        )
        x_epoch = xs[view, torch.arange(xs.shape[1])]
        for idx in torch.randperm(xs.shape[1]).split(128):
            loss = F.cross_entropy(head(x_epoch[idx]), ys[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    head.eval()
    with torch.no_grad():
        predicted = head(torch.from_numpy(val_x)).argmax(1).numpy()
    return float((predicted == val_y).mean())


def sweep(data_dir: Path, out: Path, *, views: int, epochs: int, seed: int) -> list[dict[str, float]]:
    out.mkdir(parents=True, exist_ok=True)
    cached = out / f"features-v{views}.npz"
    if cached.exists():
        data = np.load(cached)
        train_x, train_y, val_x, val_y = data["train_x"], data["train_y"], data["val_x"], data["val_y"]
    else:
        train_x, train_y = extract(data_dir, "train", views=views, size=224, seed=seed)
        val_x, val_y = extract(data_dir, "validation", views=1, size=224, seed=seed)
        np.savez_compressed(cached, train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y)
    grid = itertools.product([1e-3, 3e-3, 1e-2], [0.0, 0.2, 0.5], [0, 1000], [False, True])
    rows = []
    for lr, dropout, hidden, augment in tqdm(list(grid), desc="sweep", dynamic_ncols=True):
        started = time.time()
        acc = _train_head(
            train_x,
            train_y,
            val_x[0],
            val_y,
            lr=lr,
            dropout=dropout,
            hidden=hidden,
            augment=augment,
            epochs=epochs,
            seed=seed,
        )
        rows.append(
            {
                "lr": lr,
                "dropout": dropout,
                "hidden": hidden,
                "augment": augment,
                "val_top1": acc,
                "seconds": round(time.time() - started, 1),
            }
        )
    rows.sort(key=lambda r: -r["val_top1"])
    (out / "tune.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| lr | dropout | head | augmentation | validation top-1 |", "| ---: | ---: | --- | --- | ---: |"]
    for r in rows:
        head = f"Dense({r['hidden']}) + Dense(102)" if r["hidden"] else "Dense(102)"
        aug = f"crop+flip+jitter ({views - 1} view{'s' if views > 2 else ''})" if r["augment"] else "centre crop"
        lines.append(f"| {r['lr']:g} | {r['dropout']:g} | {head} | {aug} | {r['val_top1']:.2%} |")
    (out / "tune.md").write_text("\n".join(lines) + "\n")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the data set (default: as evaluate and train find it)")
    parser.add_argument("--out", type=Path, default=Path("model/reports/tune"))
    parser.add_argument("--views", type=int, default=2, help="1 centre crop + N-1 augmented views per train image")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data_dir = data_dir_or_exit(args.data or default_data_dir())
    torch.set_num_threads(args.threads)
    rows = sweep(data_dir, args.out, views=args.views, epochs=args.epochs, seed=args.seed)
    print(json.dumps(rows[0]))


if __name__ == "__main__":
    main()
