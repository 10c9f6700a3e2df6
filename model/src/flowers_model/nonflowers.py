"""Build the "not a flower" evaluation set: ``python -m flowers_model.nonflowers --out DIR``.

Nothing here is downloaded. Two kinds of images, written as JPEG under
``DIR/<category>/`` with a ``manifest.csv`` (``path,category,source``):

* **photos that Python packages ship** inside their wheels (scikit-image's
  sample data and its LFW face subset, matplotlib's and scikit-learn's sample
  images, mahotas' demo photos): people, animals, objects, scenes, space and
  microscopy, textures, documents. The few photos become more test cases as
  random crops, the way a user's photo frames only part of a scene;
* **generated images** of the kinds that fool a flower classifier most
  (smooth colourful noise, radial gradients, fractals, shapes, patterns,
  text), drawn with NumPy and Pillow from a seed.

The set is deterministic for a seed, and every image is a non-flower by
construction (scikit-learn's ``flower.jpg`` and the Lena test photo are left
out on purpose). It is only ever used to *measure* the rejector and to fit the
slope of its score; the threshold comes from validation flowers alone.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["CATEGORIES", "build", "load_manifest"]

# (package, file inside the package, category). Only files inside the wheels, read from disk.
_PACKAGE_PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("skimage", "data/astronaut.png", "people"),
    ("skimage", "data/camera.png", "people"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "people"),
    ("mahotas", "demos/data/luispedro.jpg", "people"),
    ("skimage", "data/chelsea.png", "animals"),
    ("skimage", "data/coffee.png", "objects"),
    ("skimage", "data/coins.png", "objects"),
    ("skimage", "data/rocket.jpg", "objects"),
    ("skimage", "data/motorcycle_left.png", "objects"),
    ("skimage", "data/clock_motion.png", "objects"),
    ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png", "objects"),
    ("sklearn", "datasets/images/china.jpg", "scenes"),
    ("mahotas", "demos/data/DepartmentStore.jpg", "scenes"),
    ("skimage", "data/hubble_deep_field.jpg", "space and microscopy"),
    ("skimage", "data/moon.png", "space and microscopy"),
    ("skimage", "data/ihc.png", "space and microscopy"),
    ("skimage", "data/retina.jpg", "space and microscopy"),
    ("skimage", "data/cell.png", "space and microscopy"),
    ("mahotas", "demos/data/nuclear.png", "space and microscopy"),
    ("skimage", "data/brick.png", "textures"),
    ("skimage", "data/grass.png", "textures"),
    ("skimage", "data/gravel.png", "textures"),
    ("skimage", "data/page.png", "documents"),
    ("skimage", "data/text.png", "documents"),
)
_CROPS_PER_PHOTO = 6
_FACES = 60  # of the 200 25x25 LFW faces scikit-image ships
_GENERATED_PER_KIND = 24

CATEGORIES = (
    "people",
    "animals",
    "objects",
    "scenes",
    "space and microscopy",
    "textures",
    "documents",
    "synthetic: smooth noise",
    "synthetic: gradients",
    "synthetic: fractals",
    "synthetic: shapes",
    "synthetic: patterns",
    "synthetic: text",
)


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


def _random_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    width, height = img.size
    scale = rng.uniform(0.35, 0.9)
    w, h = max(16, int(width * math.sqrt(scale))), max(16, int(height * math.sqrt(scale)))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    crop = img.crop((left, top, left + w, top + h))
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def _photos(rng: random.Random) -> Iterator[tuple[str, str, Image.Image]]:
    for package, relative, category in _PACKAGE_PHOTOS:
        path = _package_file(package, relative)
        if path is None:
            raise SystemExit(f"{package} lacks {relative}: pip install scikit-image scikit-learn mahotas matplotlib")
        img = Image.open(path).convert("RGB")
        source = f"{package}:{relative}"
        yield category, source, img
        for _ in range(_CROPS_PER_PHOTO):
            yield category, f"{source} (random crop)", _random_crop(img, rng)
    faces_path = _package_file("skimage", "data/lfw_subset.npy")
    if faces_path is None:
        raise SystemExit("scikit-image lacks data/lfw_subset.npy")
    faces = np.load(faces_path)
    for index in rng.sample(range(len(faces)), _FACES):
        face = Image.fromarray((np.clip(faces[index], 0, 1) * 255).astype(np.uint8)).convert("RGB")
        yield "people", f"skimage:data/lfw_subset.npy[{index}]", face.resize((200, 200), Image.Resampling.BICUBIC)


def _palette(rng: random.Random, n: int) -> list[tuple[int, int, int]]:
    return [(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)) for _ in range(n)]


def _smooth_noise(rng: random.Random, np_rng: np.random.Generator, size: int) -> Image.Image:
    cells = rng.choice([2, 3, 4, 6, 8, 12, 16])
    small = np_rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    if rng.random() < 0.3:  # add fine grain on top, as in a noisy low-light photo
        grain = np_rng.normal(0, rng.uniform(5, 30), (size, size, 3))
        img = Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + grain, 0, 255).astype(np.uint8))
    return img


def _gradient(rng: random.Random, np_rng: np.random.Generator, size: int) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle) + 0.5
    else:  # radial, off-centre: the shape of a blossom seen from above, with no petals
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) * rng.uniform(1.2, 2.5)
    t = np.clip(t, 0, 1)[..., None]
    stops = np.array(_palette(rng, rng.choice([1, 2, 3])), dtype=np.float32)
    if len(stops) == 1:
        return Image.new("RGB", (size, size), tuple(int(c) for c in stops[0]))
    position = t * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    frac = position - low
    arr = stops[low[..., 0]] * (1 - frac) + stops[low[..., 0] + 1] * frac
    return Image.fromarray(arr.astype(np.uint8))


def _fractal(rng: random.Random, np_rng: np.random.Generator, size: int) -> Image.Image:
    from matplotlib import colormaps

    zoom = 10 ** rng.uniform(-0.3, 1.5)
    centre = complex(rng.uniform(-1.5, 0.4), rng.uniform(-0.8, 0.8))
    span = 3.0 / zoom
    axis = np.linspace(-span / 2, span / 2, size, dtype=np.float64)
    grid = centre + axis[None, :] + 1j * axis[:, None]
    julia = rng.random() < 0.5
    z = grid.copy() if julia else np.zeros_like(grid)
    c = complex(rng.uniform(-0.9, 0.4), rng.uniform(-0.9, 0.9)) if julia else grid
    count = np.zeros(grid.shape, dtype=np.float32)
    for _ in range(60):
        inside = np.abs(z) <= 2
        z[inside] = z[inside] ** 2 + (c if julia else c[inside])
        count += inside
    cmap = colormaps[rng.choice(["viridis", "plasma", "magma", "twilight", "hsv", "inferno", "cubehelix", "turbo"])]
    return Image.fromarray((cmap(count / count.max())[..., :3] * 255).astype(np.uint8))


def _shapes(rng: random.Random, np_rng: np.random.Generator, size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), _palette(rng, 1)[0])
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 12)):
        x0, y0 = rng.randint(-size // 4, size), rng.randint(-size // 4, size)
        x1, y1 = x0 + rng.randint(10, size), y0 + rng.randint(10, size)
        kind, fill = rng.choice(["rect", "ellipse", "polygon", "line"]), _palette(rng, 1)[0]
        if kind == "rect":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == "polygon":
            draw.polygon([(rng.randint(0, size), rng.randint(0, size)) for _ in range(rng.randint(3, 7))], fill=fill)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=rng.randint(1, 20))
    return img


def _pattern(rng: random.Random, np_rng: np.random.Generator, size: int) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    kind = rng.choice(["checker", "stripes", "rings", "voronoi", "plaid"])
    a, b = (np.array(c, dtype=np.float32) for c in _palette(rng, 2))
    period = rng.uniform(6, size / 3)
    if kind == "checker":
        t = ((xx // period + yy // period) % 2)[..., None]
    elif kind == "stripes":
        angle = rng.uniform(0, math.pi)
        t = (0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period))[..., None]
    elif kind == "rings":
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        t = (0.5 + 0.5 * np.sin(np.hypot(xx - cx, yy - cy) * 2 * math.pi / period))[..., None]
    elif kind == "plaid":
        t = (0.25 * (2 + np.sin(xx * 2 * math.pi / period) + np.sin(yy * 2 * math.pi / (period * 1.7))))[..., None]
    else:
        points = np_rng.uniform(0, size, (rng.randint(5, 40), 2)).astype(np.float32)
        colours = np_rng.integers(0, 256, (len(points), 3)).astype(np.float32)
        nearest = np.argmin((xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2, axis=-1)
        return Image.fromarray(colours[nearest].astype(np.uint8))
    return Image.fromarray((a * (1 - t) + b * t).astype(np.uint8))


_WORDS = ("invoice", "total", "receipt", "meeting", "agenda", "report", "summary", "model", "error", "page")


def _text(rng: random.Random, np_rng: np.random.Generator, size: int) -> Image.Image:
    background, ink = _palette(rng, 2)
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=rng.randint(12, 40))
    y = rng.randint(0, 20)
    while y < size:
        draw.text((rng.randint(0, 20), y), " ".join(rng.choices(_WORDS, k=rng.randint(2, 8))), fill=ink, font=font)
        y += int(font.size * rng.uniform(1.2, 2.0))  # type: ignore[union-attr]
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1))) if rng.random() < 0.3 else img


_GENERATORS: tuple[tuple[str, Callable[[random.Random, np.random.Generator, int], Image.Image]], ...] = (
    ("synthetic: smooth noise", _smooth_noise),
    ("synthetic: gradients", _gradient),
    ("synthetic: fractals", _fractal),
    ("synthetic: shapes", _shapes),
    ("synthetic: patterns", _pattern),
    ("synthetic: text", _text),
)


def _generated(rng: random.Random, np_rng: np.random.Generator) -> Iterator[tuple[str, str, Image.Image]]:
    for category, generate in _GENERATORS:
        for index in range(_GENERATED_PER_KIND):
            size = rng.choice([224, 256, 320, 400])
            yield category, f"generated:{generate.__name__.lstrip('_')}#{index}", generate(rng, np_rng, size)


def build(out: Path, *, seed: int = 0) -> list[tuple[Path, str, str]]:
    """Write the set under ``out`` (replacing an earlier one) and return ``(path, category, source)`` rows."""
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[Path, str, str]] = []
    for index, (category, source, img) in enumerate([*_photos(rng), *_generated(rng, np_rng)]):
        folder = out / category.replace(": ", "-").replace(" ", "-")
        folder.mkdir(exist_ok=True)
        path = folder / f"{index:04d}.jpg"
        buffer = io.BytesIO()
        img.convert("RGB").save(buffer, format="JPEG", quality=90)
        path.write_bytes(buffer.getvalue())
        rows.append((path, category, source))
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "category", "source"])
        writer.writerows((p.relative_to(out).as_posix(), c, s) for p, c, s in rows)
    return rows


def load_manifest(root: Path) -> list[tuple[Path, str]]:
    """``(path, category)`` of every image of a set that :func:`build` wrote."""
    manifest = root / "manifest.csv"
    if not manifest.exists():
        raise SystemExit(f"no non-flower set at {root}: build it with `nox -s nonflowers`")
    with manifest.open(newline="") as fh:
        return [(root / row["path"], row["category"]) for row in csv.DictReader(fh)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("model/data/nonflowers"), help="output folder (git-ignored)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = build(args.out, seed=args.seed)
    counts: dict[str, int] = {}
    for _, category, _ in rows:
        counts[category] = counts.get(category, 0) + 1
    for category in CATEGORIES:
        print(f"{counts.get(category, 0):5d}  {category}")
    print(f"{len(rows):5d}  images in {args.out}")


if __name__ == "__main__":
    main()
