"""A tiny Oxford-102-shaped data set built from the repository's fixture photos,
so the pipeline tests need no download and finish in seconds."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

REPO = Path(__file__).resolve().parents[2]
PHOTOS = sorted((REPO / "tests" / "fixtures" / "flowers").glob("*.jpg"))
CLASS_NAMES = (REPO / "model" / "src" / "flowers_model" / "resources" / "class_names.txt").read_text().splitlines()


def pytest_configure(config: pytest.Config) -> None:
    # `nox -s model` runs "not export"; `nox -s model_export`, which installs litert-torch, runs "export".
    config.addinivalue_line("markers", "export: needs the exporter (litert-torch, ai-edge-quantizer)")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 images: each fixture photo twice (train) plus once more (validation)."""
    root = tmp_path_factory.mktemp("oxford102-tiny")
    (root / "jpg").mkdir()
    labels = np.zeros(len(PHOTOS) * 3, dtype=np.uint8)
    rows = []
    index = 0
    for photo in PHOTOS:
        class_id = int(photo.name.split("-", 1)[0])
        for split in ("train", "train", "validation"):
            index += 1
            name = f"image_{index:05d}.jpg"
            shutil.copyfile(photo, root / "jpg" / name)
            labels[index - 1] = class_id
            rows.append((name, split, CLASS_NAMES[class_id - 1]))
    scipy.io.savemat(root / "imagelabels.mat", {"labels": labels[np.newaxis, :]})
    (root / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    with (root / "splits.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "split", "class_name"])
        writer.writerows(rows)
    return root
