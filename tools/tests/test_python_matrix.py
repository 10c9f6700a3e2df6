"""Which interpreter a nox session gets, from the wheel table; and the table's check against PyPI's file names.

The check itself needs PyPI (``nox -s repo`` runs it after these tests); here it reads a stand-in index.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import python_matrix as pm

TFLITE = pm.TFLITE_RUNTIME


def nothing_installed(version: str) -> bool:
    return False


def test_the_readme_pythons_are_the_matrix() -> None:
    readme = (pm.ROOT / "README.md").read_text()
    assert "Python 3.10, 3.11, 3.12 or 3.13" in readme
    assert pm.PYTHONS == ("3.10", "3.11", "3.12", "3.13")


@pytest.mark.parametrize(
    ("sys_platform", "machine", "key"),
    [
        ("linux", "x86_64", "linux-x86_64"),
        ("linux", "aarch64", "linux-aarch64"),
        ("linux", "arm64", "linux-aarch64"),
        ("darwin", "arm64", "macos-arm64"),
        ("darwin", "x86_64", "macos-x86_64"),
        ("win32", "AMD64", "windows-amd64"),
        ("freebsd14", "amd64", "freebsd14-amd64"),
    ],
)
def test_platform_keys(sys_platform: str, machine: str, key: str) -> None:
    assert pm.platform_key(sys_platform, machine) == key


def test_a_python_with_wheels_runs_the_session_itself() -> None:
    choice = pm.pick_python([TFLITE], running="3.11", platform="linux-x86_64", is_installed=nothing_installed)
    assert choice == pm.Choice(python=None, skip=None)


def test_without_wheels_the_newest_installed_python_that_has_them_runs_it() -> None:
    asked: list[str] = []

    def installed(version: str) -> bool:
        asked.append(version)
        return version in ("3.10", "3.11")

    choice = pm.pick_python([TFLITE], running="3.13", platform="linux-x86_64", is_installed=installed)
    assert choice == pm.Choice(python="3.11")
    assert asked == ["3.11"]


def test_without_any_such_python_the_session_is_skipped_saying_why() -> None:
    choice = pm.pick_python([TFLITE], running="3.12", platform="linux-aarch64", is_installed=nothing_installed)
    assert choice.python is None
    assert choice.skip == (
        "tflite-runtime 2.14 has wheels for Python 3.10-3.11 only, not 3.12; no python3.10 or python3.11 found on PATH"
    )
    assert "\n" not in choice.skip


def test_a_platform_without_wheels_is_skipped_whatever_is_installed() -> None:
    choice = pm.pick_python([TFLITE], running="3.11", platform="macos-arm64", is_installed=lambda version: True)
    assert choice == pm.Choice(skip="tflite-runtime 2.14 has no wheels for macos-arm64")


def test_every_binary_must_have_wheels_on_the_chosen_python() -> None:
    binaries = [pm.TORCH, pm.EXPORTER]
    assert pm.pick_python(binaries, running="3.13", platform="linux-x86_64").python is None
    skip = pm.pick_python(binaries, running="3.12", platform="windows-amd64", is_installed=lambda v: True).skip
    assert skip == "litert-torch (its litert-converter) has no wheels for windows-amd64"


def test_a_forced_interpreter_is_checked_too() -> None:
    reason = pm.skip_reason([TFLITE], "3.13", "linux-x86_64")
    assert reason == "tflite-runtime 2.14 has wheels for Python 3.10-3.11 only, not 3.13"
    assert pm.skip_reason([pm.LITERT, pm.TORCH], "3.13", "linux-x86_64") is None


def test_the_readme_matrix_holds_for_every_named_python() -> None:
    """Linux: everything; macOS (Apple silicon) and Windows: the client and the serving core."""
    for python in pm.PYTHONS:
        for platform in ("linux-x86_64", "linux-aarch64"):
            assert pm.skip_reason([pm.LITERT, pm.TORCH, pm.AWSLAMBDARIC], python, platform) is None
        for platform in ("macos-arm64", "windows-amd64"):
            assert pm.skip_reason([pm.LITERT], python, platform) is None


def test_table_requirements_are_what_we_install() -> None:
    serving = pm._pyproject(pm.ROOT / "packages" / "flowers-serving" / "pyproject.toml")["optional-dependencies"]
    model = pm._pyproject(pm.ROOT / "model" / "pyproject.toml")["optional-dependencies"]
    assert list(pm.LITERT.requirements) == serving["litert"]
    assert pm.TFLITE_RUNTIME.requirements[0] in serving["tflite"]
    assert pm.AWSLAMBDARIC.requirements[0] in serving["local"]
    assert pm.EXPORTER.requirements[0] in model["export"]


# --- the check, against a stand-in for PyPI's simple index ------------------------------------------------------


class FakeIndex:
    def __init__(self, files: dict[str, list[str]], latest: dict[str, tuple[str, list[str]]] | None = None) -> None:
        self._files = files
        self._latest = latest or {}

    def files(self, name: str) -> list[dict[str, Any]]:
        return [{"filename": f, "requires-python": ">=3.10", "yanked": False} for f in self._files[name]]

    def latest_requires(self, name: str) -> tuple[str, list[str]]:
        return self._latest[name]


TFLITE_FILES = [
    f"tflite_runtime-2.14.0-cp3{minor}-cp3{minor}-{plat}.whl"
    for minor in (8, 9, 10, 11)
    for plat in ("manylinux2014_x86_64", "manylinux_2_34_aarch64", "manylinux_2_34_armv7l")
] + ["tflite_runtime-2.13.0-cp312-cp312-manylinux2014_x86_64.whl"]


@pytest.mark.parametrize("platform", list(pm.PLATFORMS))
@pytest.mark.parametrize("python", pm.PYTHONS)
def test_the_check_reads_wheel_tags_as_pip_does(python: str, platform: str) -> None:
    index = FakeIndex({"tflite-runtime": TFLITE_FILES})
    expected = python in TFLITE.pythons(platform)
    assert pm.wheels_on_pypi(TFLITE, python, platform, index) == expected  # type: ignore[arg-type]


def test_the_check_follows_markers_and_newer_glibc_is_not_enough_for_older_linux() -> None:
    litert = pm.Binary("x", ("pkg>=2.1,<2.1.2; sys_platform != 'win32'", "pkg>=2.1; sys_platform == 'win32'"), {})
    index = FakeIndex(
        {"pkg": ["pkg-2.1.1-cp312-cp312-manylinux_2_40_x86_64.whl", "pkg-2.3.0-cp312-cp312-win_amd64.whl"]}
    )
    assert not pm.wheels_on_pypi(litert, "3.12", "linux-x86_64", index)  # type: ignore[arg-type]  # glibc 2.34
    assert pm.wheels_on_pypi(litert, "3.12", "windows-amd64", index)  # type: ignore[arg-type]
    assert not pm.wheels_on_pypi(litert, "3.13", "windows-amd64", index)  # type: ignore[arg-type]


def test_the_check_follows_a_pure_python_package_to_its_binary_dependency() -> None:
    exporter = pm.Binary("e", ("front>=1",), {}, via="core")
    index = FakeIndex(
        {
            "front": ["front-1.0-py3-none-any.whl"],
            "core": ["core-0.5.0-cp311-cp311-macosx_12_0_arm64.whl", "core-0.6.0-cp311-cp311-win_amd64.whl"],
        },
        {"front": ("1.0", ["core==0.5.*", "other; extra == 'dev'"])},
    )
    assert pm.wheels_on_pypi(exporter, "3.11", "macos-arm64", index)  # type: ignore[arg-type]
    assert not pm.wheels_on_pypi(exporter, "3.11", "windows-amd64", index)  # type: ignore[arg-type]  # 0.6 only


def test_lock_markers_are_evaluated_per_python() -> None:
    pins = pm._lock_pins(pm.ROOT / "docker" / "requirements.lock")
    for python in pm.PYTHONS:
        chosen = pm._applicable(pins, python, "linux-x86_64")
        numpy = [p for p in chosen if p.startswith("numpy==")]
        assert len(numpy) == 1, (python, numpy)  # exactly one numpy for every Python we name
        assert any(p.startswith("ai-edge-litert==") for p in chosen)
