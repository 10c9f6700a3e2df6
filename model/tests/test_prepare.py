"""prepare/download against a small archive served by a local HTTP server the test builds."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import PHOTOS

from flowers_model.prepare import ARCHIVE, LABELS, SETID, PrepareError, download, prepare


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("site")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, photo in enumerate(PHOTOS[:3], 1):
            tar.add(photo, arcname=f"jpg/image_{i:05d}.jpg")
        evil = tarfile.TarInfo("jpg/../../evil.jpg")  # path traversal: must not escape
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    (root / ARCHIVE).write_bytes(buf.getvalue())
    scipy.io.savemat(root / LABELS, {"labels": np.array([[13, 54, 77]], dtype=np.uint8)})
    scipy.io.savemat(root / SETID, {"trnid": np.array([[1]]), "valid": np.array([[2]]), "tstid": np.array([[3]])})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()
    server.server_close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prepare_official_split(site: tuple[str, Path], tmp_path: Path) -> None:
    url, root = site
    out = prepare(
        tmp_path / "data",
        base_url=url,
        official_split=True,
        known_sha256={LABELS: sha(root / LABELS)},
        expected_images=3,
    )
    assert sorted(p.name for p in (out / "jpg").iterdir()) == ["image_00001.jpg", "image_00002.jpg", "image_00003.jpg"]
    assert not (tmp_path / "evil.jpg").exists()
    assert not any(p.name == "evil.jpg" for p in tmp_path.rglob("*"))
    rows = list(csv.DictReader((out / "splits.csv").open()))
    assert [(r["split"], r["class_name"]) for r in rows] == [
        ("train", "king protea"),
        ("validation", "sunflower"),
        ("test", "passion flower"),
    ]
    assert len((out / "class_names.txt").read_text().splitlines()) == 102


def test_checksum_mismatch_is_refused(site: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = site
    with pytest.raises(PrepareError, match="SHA-256"):
        download(url + LABELS, tmp_path / LABELS, expected_sha256="0" * 64)
    assert not (tmp_path / LABELS).exists()
    assert not (tmp_path / (LABELS + ".part")).exists()


def test_missing_file_is_a_clear_error(site: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = site
    with pytest.raises(PrepareError, match="HTTP 404"):
        download(url + "nope.tgz", tmp_path / "nope.tgz")


def test_wrong_image_count_is_refused(site: tuple[str, Path], tmp_path: Path) -> None:
    url, root = site
    with pytest.raises(PrepareError, match="labels, expected 8189"):
        prepare(tmp_path / "data", base_url=url, known_sha256={LABELS: sha(root / LABELS)})


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="download failed"):
        download("http://127.0.0.1:9/102flowers.tgz", tmp_path / "x.tgz", timeout=2)
