"""The container recipe without Docker: this venv holds exactly docker/requirements.lock (hash-checked)
plus the serving package, as the image does; the handler runs from it under the real RIE."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
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


# --- both architectures: every pin has a wheel the arm64 and the x86_64 image can install -------------------------

sys.path.insert(0, str(REPO / "docker"))
from wheels import ARCHITECTURES, image_python, manylinux_platforms, pins_for  # noqa: E402


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_pin_has_a_wheel_for_the_image_on(arch: str) -> None:
    """docker/wheels.py downloaded what `docker build --platform` would install; check it pin by pin."""
    from packaging.tags import compatible_tags, cpython_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename

    wheelhouse = Path(os.environ.get("FLOWERS_WHEELHOUSE", REPO / ".tools" / "wheelhouse")) / arch
    assert wheelhouse.is_dir(), f"{wheelhouse} is missing: run `python docker/wheels.py .tools/wheelhouse` first"
    python = image_python()
    version = tuple(int(part) for part in python.split("."))
    platforms = manylinux_platforms(arch)
    abi = "cp" + python.replace(".", "")
    supported = {*cpython_tags(version, abis=[abi], platforms=platforms), *compatible_tags(version, abi, platforms)}
    wheels = {path: parse_wheel_filename(path.name) for path in wheelhouse.glob("*.whl")}
    pins = pins_for(arch, python)
    assert {"numpy", "pillow", "ai-edge-litert", "aws-lambda-powertools"} <= {p.name for p in pins}
    for pin in pins:
        found = [
            (path, tags)
            for path, (name, wheel_version, _, tags) in wheels.items()
            if canonicalize_name(name) == canonicalize_name(pin.name) and str(wheel_version) == pin.version
        ]
        assert found, f"no {arch} wheel of {pin.name}=={pin.version} for Python {python}"
        path, tags = found[0]
        assert tags & supported, f"{path.name} does not install on cp{python} {arch}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() in pin.hashes, f"{path.name}: hash not in the lock"
