"""Download the lock's wheels for the image on both architectures: ``python docker/wheels.py DIR``.

What ``docker build --platform linux/amd64`` and ``--platform linux/arm64`` would install: the pins of
docker/requirements.lock whose markers hold for the image (the Lambda base image's Python, Linux, the
architecture), binary wheels only, hash-checked, into ``DIR/x86_64`` and ``DIR/aarch64``. Markers are
evaluated here for the target, because pip evaluates them for the interpreter running it. docker/tests checks
the result; ``nox -s container`` runs this first.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

DOCKER = Path(__file__).resolve().parent
LOCK = DOCKER / "requirements.lock"
DOCKERFILE = DOCKER / "Dockerfile"
ARCHITECTURES = ("x86_64", "aarch64")
#: Amazon Linux 2023, under the Lambda Python base images, has glibc 2.34: manylinux_2_34 and older wheels run.
GLIBC = (2, 34)

__all__ = ["ARCHITECTURES", "Pin", "image_python", "manylinux_platforms", "pins_for", "target_environment"]


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: frozenset[str]


def image_python() -> str:
    """The Python of the base image, from the Dockerfile (``public.ecr.aws/lambda/python:3.12``)."""
    match = re.search(r"^ARG BASE_IMAGE=\S+/lambda/python:(3\.\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    if not match:
        raise LookupError("no ARG BASE_IMAGE=...lambda/python:3.X in the Dockerfile")
    return match.group(1)


def target_environment(arch: str, python: str) -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": arch,
    }


def manylinux_platforms(arch: str) -> list[str]:
    """Platform tags a glibc-2.34 system of this architecture runs, newest first."""
    major, minor = GLIBC
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{arch}"]
    if arch == "x86_64":
        tags += [f"manylinux_{major}_{m}_{arch}" for m in range(16, 4, -1)] + [
            "manylinux2010_x86_64",
            "manylinux1_x86_64",
        ]
    return tags


def pins_for(arch: str, python: str, lock: Path = LOCK) -> list[Pin]:
    """The lock's pins that apply to the image on this architecture, with their allowed hashes."""
    environment = target_environment(arch, python)
    pins: list[Pin] = []
    for block in re.split(r"\n(?=\S)", lock.read_text()):
        first = block.split("\\")[0].strip()
        if not first or first.startswith("#"):
            continue
        spec, _, marker = first.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(environment):
            continue
        name, version = spec.strip().split("==")
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
        pins.append(Pin(name.lower(), version, hashes))
    return pins


def download(out: Path) -> None:
    python = image_python()
    for arch in ARCHITECTURES:
        target = out / arch
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(
                "".join(
                    f"{p.name}=={p.version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(p.hashes)) + "\n"
                    for p in pins_for(arch, python)
                )
            )
            platforms = [arg for platform in manylinux_platforms(arch) for arg in ("--platform", platform)]
            pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
            target_python = ["--python-version", python, "--implementation", "cp", "--abi", _abi(python)]
            files = ["--require-hashes", "-r", str(requirements), "-d", str(target)]
            subprocess.run([*pip, *target_python, *platforms, *files], check=True)


def _abi(python: str) -> str:
    return "cp" + python.replace(".", "")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    download(Path(sys.argv[1]))
