"""Which Python runs which nox session: where PyPI has wheels of our binary dependencies.

The README names Python 3.10-3.13. Most of our dependencies have wheels for all
of them on every platform; the few in ``BINARIES`` do not (tflite-runtime 2.14
stops at 3.11, torch has no Intel-Mac wheels, the exporter none for Windows or
Linux arm64). A nox session that needs one of them runs on the interpreter nox
runs under when that has wheels, else on another installed Python that has
them, else it is skipped with a one-line reason: a missing wheel never fails the
run. ``pick_python`` makes that choice (the noxfile calls it when it is loaded)
and ``skip_reason`` checks the interpreter a session finally got (``nox -P``).

The table is written by hand and checked against PyPI by ``check`` (``python
tools/python_matrix.py check``, run by ``nox -s repo``): every cell against the
wheel files PyPI lists, and the dependencies of our distributions and
``docker/requirements.lock`` by resolving them for each of 3.10-3.13. What the
noxfile imports is stdlib only (``check`` also needs ``packaging`` and uv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform as _platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BINARIES",
    "PLATFORMS",
    "PYTHONS",
    "Binary",
    "Choice",
    "check",
    "installed",
    "pick_python",
    "platform_key",
    "skip_reason",
]

ROOT = Path(__file__).resolve().parents[1]

#: The Pythons the README names; every one of them must pass `nox`.
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
#: Platforms as ``platform_key`` names them, and uv's name for each (glibc 2.34: Amazon Linux 2023, the
#: Lambda image; Debian 12 and Ubuntu 22.04 and later are newer; macOS 14 and later).
PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_34",
    "linux-aarch64": "aarch64-manylinux_2_34",
    "macos-arm64": "aarch64-apple-darwin",
    "macos-x86_64": "x86_64-apple-darwin",
    "windows-amd64": "x86_64-pc-windows-msvc",
}
_ALL = PYTHONS
_LINUX = ("linux-x86_64", "linux-aarch64")


@dataclass(frozen=True)
class Binary:
    """A dependency whose wheels do not cover every Python of ``PYTHONS`` on every platform."""

    name: str  # as a person reads it in a skip reason
    requirements: tuple[str, ...]  # what we install, as written in our pyproject or noxfile
    wheels: dict[str, tuple[str, ...]] = field(hash=False)  # platform -> the Pythons of PYTHONS with wheels
    via: str | None = None  # the dependency whose wheels are the ones missing (checked through its pin)

    def pythons(self, platform: str) -> tuple[str, ...]:
        return self.wheels.get(platform, ())


TFLITE_RUNTIME = Binary(
    "tflite-runtime 2.14",
    ("tflite-runtime==2.14.0",),
    dict.fromkeys(_LINUX, ("3.10", "3.11")),  # manylinux only, cp38-cp311
)
LITERT = Binary(
    "ai-edge-litert",
    (  # flowers-serving's `litert` extra
        "ai-edge-litert>=2.1,<2.1.2; python_version < '3.14' and sys_platform != 'win32'",
        "ai-edge-litert>=2.1; python_version >= '3.14' or sys_platform == 'win32'",
    ),
    {**dict.fromkeys(_LINUX, _ALL), "macos-arm64": _ALL, "windows-amd64": _ALL},  # no Intel-Mac wheels
)
TORCH = Binary(
    "torch 2.13.0",
    ("torch==2.13.0",),
    {**dict.fromkeys(_LINUX, _ALL), "macos-arm64": _ALL, "windows-amd64": _ALL},  # none for Intel Macs
)
EXPORTER = Binary(
    "litert-torch (its litert-converter)",
    ("litert-torch>=0.10",),  # flowers-model's `export` extra
    {"linux-x86_64": _ALL, "macos-arm64": _ALL},
    via="litert-converter",
)
AWSLAMBDARIC = Binary(
    "awslambdaric",
    # flowers-serving's `local` extra asks for it on Linux only (elsewhere PyPI has only an sdist that needs a C++
    # toolchain, and the local stack runs the handler in its in-process runtime instead).
    ("awslambdaric>=3.0; sys_platform == 'linux'",),
    dict.fromkeys(_LINUX, _ALL),
)
BINARIES = (TFLITE_RUNTIME, LITERT, TORCH, EXPORTER, AWSLAMBDARIC)


# --- choosing the interpreter ------------------------------------------------------------------------------------


def platform_key(sys_platform: str = sys.platform, machine: str = _platform.machine()) -> str:
    """This machine as a key of ``PLATFORMS`` (or ``<os>-<machine>`` for one we do not list)."""
    os_name = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys_platform, sys_platform)
    arch = machine.lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch) if os_name == "linux" else arch
    if os_name == "macos":
        arch = {"aarch64": "arm64"}.get(arch, arch)
    if os_name == "windows":
        arch = {"x86_64": "amd64"}.get(arch, arch)
    return f"{os_name}-{arch}"


def installed(version: str) -> bool:
    """Whether ``pythonX.Y`` on PATH (on Windows: the ``py`` launcher) runs and is that version, as nox finds it.

    Run, not only looked up: a version manager's shim (pyenv) is on PATH for every version it knows, and fails
    for those not selected.
    """
    found = shutil.which(f"python{version}")
    command = [found] if found else ["py", f"-{version}"] if sys.platform == "win32" and shutil.which("py") else None
    if command is None:
        return False
    try:
        out = subprocess.run(
            [*command, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


@dataclass(frozen=True)
class Choice:
    """``python``: None runs the session on nox's own interpreter, "3.X" on that one; ``skip``: why not at all."""

    python: str | None = None
    skip: str | None = None


def _wheel_pythons(binaries: Sequence[Binary], platform: str) -> tuple[str, ...]:
    return tuple(v for v in PYTHONS if all(v in b.pythons(platform) for b in binaries))


def skip_reason(binaries: Sequence[Binary], python: str, platform: str) -> str | None:
    """Why a session that needs ``binaries`` cannot run on Python ``python`` here (None: it can)."""
    for binary in binaries:
        have = binary.pythons(platform)
        if not have:
            return f"{binary.name} has no wheels for {platform}"
        if python not in have:
            return f"{binary.name} has wheels for Python {_span(have)} only, not {python}"
    return None


def pick_python(
    binaries: Sequence[Binary],
    *,
    running: str | None = None,
    platform: str | None = None,
    is_installed: Callable[[str], bool] = installed,
) -> Choice:
    """The interpreter for a session that needs ``binaries``: the running one, another installed one, or a skip."""
    running = running or f"{sys.version_info[0]}.{sys.version_info[1]}"
    platform = platform or platform_key()
    if skip_reason(binaries, running, platform) is None:
        return Choice()
    candidates = _wheel_pythons(binaries, platform)
    for version in reversed(candidates):  # the newest that has wheels
        if is_installed(version):
            return Choice(python=version)
    reason = skip_reason(binaries, running, platform)
    if candidates:
        names = " or ".join(f"python{v}" for v in candidates)
        reason = f"{reason}; no {names} found on PATH"
    return Choice(skip=reason)


def _version(python: str) -> tuple[int, ...]:
    return tuple(int(part) for part in python.split("."))


def _span(versions: Sequence[str]) -> str:
    return versions[0] if len(versions) == 1 else f"{versions[0]}-{versions[-1]}"


# --- checking the table and our pins against PyPI ---------------------------------------------------------------
#
# Two checks, both against PyPI: (1) every cell of the table, from the wheel file names of the simple index (one
# request per project, tags matched in-process with `packaging`: a few seconds); (2) a real resolution, with
# `uv pip compile --only-binary :all:`, of our distributions' dependencies and of docker/requirements.lock, for
# each Python of PYTHONS on Linux x86_64 (CI's platform). uv takes seconds per resolution here, so (2) is kept to
# a few sets per Python.

INDEX = os.environ.get("FLOWERS_SIMPLE_INDEX", "https://pypi.org/simple")
_LINUX_GLIBC = 34  # manylinux_2_34: Amazon Linux 2023, the Lambda image; current distributions are newer
_MACOS = (14, 0)  # torch 2.13's macOS wheels are macosx_14_0_arm64


def _marker_env(python: str, platform: str) -> dict[str, str]:
    os_name, machine = platform.split("-")
    sys_platform = {"linux": "linux", "macos": "darwin", "windows": "win32"}[os_name]
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": sys_platform,
        "platform_system": {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[sys_platform],
        "platform_machine": {"amd64": "AMD64"}.get(machine, machine),
        "os_name": "nt" if sys_platform == "win32" else "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def _supported_tags(python: str, platform: str) -> set[Any]:
    from packaging import tags

    os_name, machine = platform.split("-")
    if os_name == "linux":
        plats = [f"manylinux_2_{minor}_{machine}" for minor in range(_LINUX_GLIBC, 4, -1)]
        plats += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    elif os_name == "macos":
        plats = list(tags.mac_platforms(_MACOS, machine))
    else:
        plats = [f"win_{machine}"]
    version = _version(python)
    interpreter = f"cp{version[0]}{version[1]}"
    return {
        *tags.cpython_tags(version, [interpreter], plats),
        *tags.compatible_tags(version, interpreter, plats),
    }


class _Index:
    """PyPI's simple index (PEP 691 JSON) and project JSON, each fetched once."""

    def __init__(self) -> None:
        self._files: dict[str, list[dict[str, Any]]] = {}
        self._latest: dict[str, dict[str, Any]] = {}

    def _get(self, url: str, accept: str) -> dict[str, Any]:
        request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 (https)
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            data: dict[str, Any] = json.load(response)
            return data

    def files(self, name: str) -> list[dict[str, Any]]:
        if name not in self._files:
            self._files[name] = self._get(f"{INDEX}/{name}/", "application/vnd.pypi.simple.v1+json")["files"]
        return self._files[name]

    def latest_requires(self, name: str) -> tuple[str, list[str]]:
        """The newest release and its Requires-Dist (the project JSON describes only the newest)."""
        if name not in self._latest:
            self._latest[name] = self._get(f"https://pypi.org/pypi/{name}/json", "application/json")["info"]
        info = self._latest[name]
        return info["version"], list(info.get("requires_dist") or [])


def _newest_with_wheel(index: _Index, requirement: str, python: str, platform: str) -> str | None:
    """The newest version ``requirement`` allows that has a wheel for this Python and platform."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    req = Requirement(requirement)
    supported = _supported_tags(python, platform)
    wheels: dict[Any, bool] = {}
    for file in index.files(req.name):
        if file.get("yanked") or not file["filename"].endswith(".whl"):
            continue
        try:
            _, version, _, file_tags = parse_wheel_filename(file["filename"])
        except InvalidWheelFilename:
            continue
        requires_python = file.get("requires-python")
        fits = bool(file_tags & supported) and (
            not requires_python or SpecifierSet(requires_python).contains(f"{python}.0", prereleases=True)
        )
        wheels[version] = wheels.get(version, False) or fits
    allowed = sorted(req.specifier.filter(wheels), reverse=True)
    return next((str(v) for v in allowed if wheels[v]), None)


def _applies(requirement: str, env: dict[str, str]) -> bool:
    from packaging.requirements import Requirement

    marker = Requirement(requirement).marker
    return marker is None or marker.evaluate(env)


def wheels_on_pypi(binary: Binary, python: str, platform: str, index: _Index) -> bool:
    """Whether PyPI has wheels for ``binary`` on this Python and platform (what the table should say)."""
    from packaging.requirements import Requirement

    env = _marker_env(python, platform)
    applicable = [r for r in binary.requirements if _applies(r, env)]
    if not applicable:
        return False
    for requirement in applicable:
        version = _newest_with_wheel(index, requirement, python, platform)
        if version is None:
            return False
        if binary.via:
            latest, requires = index.latest_requires(Requirement(requirement).name)
            if version != latest:  # only the newest release's dependencies are published as JSON
                return False
            wanted = [r for r in requires if Requirement(r).name == binary.via and _applies(r, env | {"extra": ""})]
            if any(_newest_with_wheel(index, r, python, platform) is None for r in wanted):
                return False
    return True


@dataclass(frozen=True)
class DependencySet:
    """What one nox session installs from our pyprojects, and the ``BINARIES`` that decide where it can."""

    name: str
    requirements: tuple[str, ...]
    binaries: tuple[Binary, ...]


def _pyproject(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: `nox -s repo` installs tomli
        import tomli as tomllib  # type: ignore[no-redef]
    with path.open("rb") as fh:
        project: dict[str, Any] = tomllib.load(fh)["project"]
    return project


def _requirements(pyproject: Path, *extras: str) -> tuple[str, ...]:
    project = _pyproject(pyproject)
    deps = list(project.get("dependencies", []))
    for extra in extras:
        deps += project["optional-dependencies"][extra]
    return tuple(deps)


def dependency_sets() -> list[DependencySet]:
    client = ROOT / "packages" / "flowers-client" / "pyproject.toml"
    serving = ROOT / "packages" / "flowers-serving" / "pyproject.toml"
    model = ROOT / "model" / "pyproject.toml"
    return [
        # client, client_isolated, serving(runtime=litert), typecheck, contract, the model pipeline tests
        DependencySet(
            "flowers-client + flowers-serving[litert,local] + flowers-model + torch",
            (
                *_requirements(client),
                *_requirements(serving, "litert", "local"),
                *_requirements(model),
                *TORCH.requirements,
            ),
            (LITERT, AWSLAMBDARIC, TORCH),
        ),
        # model_export: litert-torch wants a newer ai-edge-litert than the serving extra allows
        DependencySet(
            "flowers-model[export] + flowers-serving + torch",
            (*_requirements(model, "export"), *_requirements(serving), *TORCH.requirements),
            (EXPORTER, TORCH),
        ),
        DependencySet("flowers-serving[tflite]", _requirements(serving, "tflite"), (TFLITE_RUNTIME,)),
    ]


def _lock_pins(lock: Path) -> list[str]:
    """The lock's requirement lines without hashes or comments (markers kept)."""
    return [line.split("\\")[0].strip() for line in lock.read_text().splitlines() if line and line[0] not in " #"]


def _applicable(pins: list[str], python: str, platform: str) -> set[str]:
    """The pins (name==version, normalised) whose markers hold on this Python and platform."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    env = _marker_env(python, platform)
    chosen = set()
    for pin in pins:
        req = Requirement(pin)
        if req.marker is None or req.marker.evaluate(env):
            chosen.add(f"{canonicalize_name(req.name)}=={str(req.specifier).removeprefix('==')}")
    return chosen


def _uv_compile(requirements: Iterable[str], python: str, platform: str, *, offline: bool = False) -> tuple[bool, str]:
    """Resolve with wheels only, for one Python and platform: (True, the pins) or (False, uv's reason).

    PyPI's index pages come without caching headers, so uv fetches them anew on every run (seconds each here);
    ``offline`` resolves from what an earlier run put in uv's cache, and goes online only when that is not enough.
    """
    with tempfile.TemporaryDirectory() as tmp:
        infile = Path(tmp) / "requirements.in"
        infile.write_text("\n".join(requirements) + "\n")
        found = shutil.which("uv")
        out = subprocess.run(
            [
                *([found] if found else [sys.executable, "-m", "uv"]),
                "pip",
                "compile",
                str(infile),
                "--quiet",
                "--no-header",
                "--no-annotate",
                "--only-binary",
                ":all:",
                "--python-version",
                python,
                "--python-platform",
                PLATFORMS[platform],
            ],
            capture_output=True,
            text=True,
            check=False,
            # Resolve only: never download an interpreter for the target version.
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", **({"UV_OFFLINE": "1"} if offline else {})},
        )
    if offline and out.returncode != 0 and "network was disabled" in out.stderr:
        return _uv_compile(requirements, python, platform)
    if out.returncode == 0:
        return True, out.stdout
    causes = [line.strip().removeprefix("cause: ") for line in out.stderr.splitlines() if "Because" in line]
    return False, causes[0] if causes else (out.stderr.strip().splitlines() or ["uv failed"])[-1]


def _pins(compiled: str) -> set[str]:
    from packaging.utils import canonicalize_name

    pins = set()
    for line in compiled.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins.add(f"{canonicalize_name(name)}=={version}")
    return pins


def check(*, jobs: int = 4, out: Callable[[str], None] = print) -> int:
    """Compare ``BINARIES`` with PyPI, resolve our dependencies and the lock on each Python; 0 when all agree."""
    from packaging.requirements import Requirement

    started = time.monotonic()
    problems = []
    index = _Index()
    with ThreadPoolExecutor(8) as pool:  # fetch every project page at once
        names = {Requirement(r).name for b in BINARIES for r in b.requirements} | {b.via for b in BINARIES if b.via}
        list(pool.map(index.files, sorted(names)))
    for binary in BINARIES:
        for platform in PLATFORMS:
            for python in PYTHONS:
                on_pypi = wheels_on_pypi(binary, python, platform, index)
                if on_pypi != (python in binary.pythons(platform)):
                    said = "has" if on_pypi else "has no"
                    problems.append(f"PyPI {said} wheels of {binary.name} for Python {python} on {platform}")
        row = ", ".join(f"{p} {_span(binary.pythons(p))}" for p in PLATFORMS if binary.pythons(p)) or "none"
        out(f"{binary.name:38} wheels: {row}")

    platform = "linux-x86_64"
    lock = ROOT / "docker" / "requirements.lock"
    lock_pins = _lock_pins(lock)
    tasks = [(s.name, s.requirements, python) for python in PYTHONS for s in dependency_sets()]
    tasks = [t for t in tasks if _expected(t[0], t[2], platform)]
    tasks += [(str(lock.relative_to(ROOT)), tuple(lock_pins), python) for python in PYTHONS]
    # Each set once online (on its newest Python), then the others from uv's cache where it has what they need.
    first: dict[str, int] = {}
    for i, (name, _, python) in enumerate(tasks):
        if name not in first or _version(python) > _version(tasks[first[name]][2]):
            first[name] = i
    results: dict[int, tuple[bool, str]] = {}
    with ThreadPoolExecutor(jobs) as pool:
        online = {i: pool.submit(_uv_compile, tasks[i][1], tasks[i][2], platform) for i in first.values()}
        results |= {i: future.result() for i, future in online.items()}
        rest = {
            i: pool.submit(_uv_compile, t[1], t[2], platform, offline=True)
            for i, t in enumerate(tasks)
            if i not in results
        }
        results |= {i: future.result() for i, future in rest.items()}
    for i, (name, _, python) in enumerate(tasks):
        ok, detail = results[i]
        if not ok:
            problems.append(f"{name} does not resolve on Python {python} {platform}: {detail}")
        elif name.endswith(".lock") and _pins(detail) != _applicable(lock_pins, python, platform):
            extra = sorted(_pins(detail) - _applicable(lock_pins, python, platform))
            problems.append(f"{name} is incomplete for Python {python} {platform}: it also needs {extra}")
    out(
        f"checked {len(BINARIES) * len(PLATFORMS) * len(PYTHONS)} table cells against PyPI's wheels and "
        f"{len(tasks)} resolutions on {platform} (Python {', '.join(PYTHONS)}) in {time.monotonic() - started:.0f} s"
    )
    for problem in problems:
        out(f"MISMATCH: {problem}")
    return 1 if problems else 0


def _expected(set_name: str, python: str, platform: str) -> bool:
    """Whether the table says a dependency set installs here (where it does not, the binary's cells say so)."""
    (dep_set,) = (s for s in dependency_sets() if s.name == set_name)
    return skip_reason(dep_set.binaries, python, platform) is None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check"], help="check: compare the table and our pins with PyPI")
    parser.add_argument("--jobs", type=int, default=4, help="uv resolutions run side by side")
    args = parser.parse_args(argv)
    return check(jobs=args.jobs)


if __name__ == "__main__":
    sys.exit(main())
