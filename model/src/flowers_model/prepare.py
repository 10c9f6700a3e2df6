"""Download and lay out the official Oxford 102 archive: ``nox -s prepare -- --out DIR``.

Fetches ``102flowers.tgz`` (about 330 MB), ``imagelabels.mat`` and, with
``--official-split``, ``setid.mat``, with a progress bar; checks every file's
size against what the server declared and, where the digest is known, its
SHA-256; unpacks the photos safely into ``DIR/jpg``; and writes
``class_names.txt`` and ``splits.csv`` so ``DIR`` has the layout the rest of
the pipeline reads (that of ``../shared/datasets/oxford102``). The split is the
reference project's 80/10/10 one (shipped in this package), or the official
1,020/1,020/6,149 one from ``setid.mat`` with ``--official-split``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import tarfile
from importlib import resources
from pathlib import Path
from typing import Final

import requests
import scipy.io
from tqdm import tqdm

__all__ = ["BASE_URL", "KNOWN_SHA256", "PrepareError", "download", "prepare"]

BASE_URL: Final = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
ARCHIVE: Final = "102flowers.tgz"
LABELS: Final = "imagelabels.mat"
SETID: Final = "setid.mat"
N_IMAGES: Final = 8189
#: Digests we could check against a copy of the official file. The archive's is
#: not listed: its size (from the server) and content (8,189 JPEGs) are checked.
KNOWN_SHA256: Final = {LABELS: "4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d"}


class PrepareError(RuntimeError):
    """A download or check failed; the message says which file and why."""


def download(url: str, dest: Path, *, expected_sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Stream ``url`` to ``dest`` (via ``dest.part``) with a progress bar, then verify it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise PrepareError(f"{url}: HTTP {response.status_code}")
            declared = int(response.headers.get("Content-Length", 0)) or None
            received = 0
            with (
                part.open("wb") as fh,
                tqdm(total=declared, unit="B", unit_scale=True, desc=dest.name, dynamic_ncols=True) as bar,
            ):
                for chunk in response.iter_content(1 << 20):
                    fh.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as exc:
        part.unlink(missing_ok=True)
        raise PrepareError(f"{url}: download failed: {exc}") from exc
    if declared is not None and received != declared:
        part.unlink(missing_ok=True)
        raise PrepareError(f"{url}: got {received:,} bytes but the server declared {declared:,} (truncated download)")
    if expected_sha256 and digest.hexdigest() != expected_sha256:
        part.unlink(missing_ok=True)
        raise PrepareError(f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {expected_sha256}")
    part.replace(dest)
    return dest


def _extract(archive: Path, out: Path) -> int:
    jpg = out / "jpg"
    jpg.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = Path(member.name)
                if not member.isfile() or name.suffix.lower() != ".jpg" or name.parent.name != "jpg":
                    continue
                # Only the file name is kept: no paths from the archive touch the disk.
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, (jpg / name.name).open("wb") as target:
                    shutil.copyfileobj(source, target)
                count += 1
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PrepareError(f"{archive}: not a valid .tgz archive: {exc}") from exc
    return count


def _write_splits(out: Path, labels: list[int], setid: Path | None) -> None:
    names = resources.files("flowers_model.resources").joinpath("class_names.txt").read_text().splitlines()
    (out / "class_names.txt").write_text("\n".join(names) + "\n")
    if setid is None:
        # The reference project's split, as shipped with this package.
        shutil.copyfile(str(resources.files("flowers_model.resources").joinpath("splits.csv")), out / "splits.csv")
        return
    ids = scipy.io.loadmat(setid)
    split_of = {
        int(i): s
        for key, s in (("trnid", "train"), ("valid", "validation"), ("tstid", "test"))
        for i in ids[key].ravel()
    }
    with (out / "splits.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "split", "class_name"])
        for index in sorted(split_of):
            writer.writerow([f"image_{index:05d}.jpg", split_of[index], names[labels[index - 1] - 1]])


def prepare(
    out: Path,
    *,
    base_url: str = BASE_URL,
    official_split: bool = False,
    known_sha256: dict[str, str] | None = None,
    expected_images: int = N_IMAGES,
) -> Path:
    known = KNOWN_SHA256 if known_sha256 is None else known_sha256
    downloads = out / "downloads"
    files = [LABELS, ARCHIVE] + ([SETID] if official_split else [])
    paths = {name: download(base_url + name, downloads / name, expected_sha256=known.get(name)) for name in files}
    labels = [int(v) for v in scipy.io.loadmat(paths[LABELS])["labels"].ravel()]
    if len(labels) != expected_images:
        raise PrepareError(f"{LABELS}: {len(labels)} labels, expected {expected_images}")
    count = _extract(paths[ARCHIVE], out)
    if count != expected_images:
        raise PrepareError(f"{ARCHIVE}: {count} photos, expected {expected_images}")
    shutil.copyfile(paths[LABELS], out / LABELS)
    _write_splits(out, labels, paths.get(SETID))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to create (photos go to OUT/jpg)")
    parser.add_argument("--base-url", default=BASE_URL, help="where the three official files live")
    parser.add_argument("--official-split", action="store_true", help="use setid.mat's 1,020/1,020/6,149 split")
    args = parser.parse_args(argv)
    try:
        out = prepare(args.out, base_url=args.base_url, official_split=args.official_split)
    except PrepareError as exc:
        raise SystemExit(f"prepare: {exc}") from None
    print(f"ready: {out} (evaluate with: nox -s evaluate -- --data {out} --split test)")


if __name__ == "__main__":
    main()
