"""The container recipe without Docker: this venv holds exactly docker/requirements.lock (hash-checked)
plus the serving package, as the image does; the handler runs from it under the real RIE."""

from __future__ import annotations

import base64
import importlib.metadata
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flowers_serving.local.rie import RieWorker

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "docker" / "requirements.lock"
PHOTO = REPO / "tests" / "fixtures" / "flowers" / "077-passion-flower.jpg"


def _locked() -> dict[str, str]:
    """The pins of the lock that apply to this interpreter and platform, as pip would pick them."""
    from packaging.markers import Marker

    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            spec, _, marker = line.split("\\")[0].partition(";")
            if marker.strip() and not Marker(marker.strip()).evaluate():
                continue
            name, version = spec.strip().split("==")
            pins[name.lower()] = version
    return pins


def test_installed_versions_are_the_locked_ones() -> None:
    for name, version in _locked().items():
        assert importlib.metadata.version(name) == version, name


def test_no_training_dependencies_in_the_image() -> None:
    for name in ("torch", "flowers-model", "litert-torch", "tensorflow", "matplotlib"):
        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.version(name)


@pytest.fixture(scope="module")
def rie() -> Iterator[RieWorker]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker = RieWorker(port)
    with worker:
        yield worker


def test_handler_runs_under_the_rie(rie: RieWorker) -> None:
    assert sys.prefix in sys.executable
    body = {"image": base64.b64encode(PHOTO.read_bytes()).decode(), "top_k": 3}
    reply = requests.post(rie.url, json=body, timeout=60).json()
    assert reply["predictions"][0]["class_id"] == 77, reply
    bad = requests.post(rie.url, json={"image": base64.b64encode(b"nope").decode()}, timeout=30).json()
    assert bad["error"]["code"] == "unsupported_media_type"
