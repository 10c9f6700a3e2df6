"""The main job end to end: ``nox -s demo``.

Starts the local stack (the real Lambda RIE running the handler with the
shipped model — the built-in Python runtime where no RIE runs — behind the
local API Gateway front and the direct-invoke front), classifies the sample
flower photos with the ``flowers`` CLI exactly as a user would, prints the
table, and stops the stack. Extra arguments are passed to ``flowers classify``
(e.g. ``nox -s demo -- my-photo.jpg --top-k 3``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from flowers_serving.local import LocalStack, PortInUse

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "tests" / "fixtures" / "flowers").glob("*.jpg"))


def start_stack() -> LocalStack:
    """On the usual ports (3000, 8080) where they are free, else on any free ones."""
    ports = {"--port": 3000, "--rie-port": 8080}
    while True:
        try:
            return LocalStack(gateway_port=ports["--port"], rie_port=ports["--rie-port"], workers=1).start()
        except PortInUse as busy:
            if ports[busy.option] == 0:
                raise
            print(f"  (port {busy.port} is in use {busy.owner}: using a free one instead)", flush=True)
            ports[busy.option] = 0


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so the stack's context manager stops every process it started


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        signal.signal(signum, interrupt)
    flowers = shutil.which("flowers")
    if flowers is None:
        print("demo: the `flowers` CLI is not installed (run this through `nox -s demo`)", file=sys.stderr)
        return 1
    print("starting the local stack (Lambda RIE + API Gateway front)...", flush=True)
    stack = start_stack()
    try:
        endpoint = f"{stack.gateway_url}/predict"
        kind = "Lambda RIE" if stack.runtime_kind == "rie" else "built-in Python runtime"
        print(f"  POST {endpoint}\n  POST {stack.rie_url}\n  ({kind})\n", flush=True)
        images = [a for a in argv if not a.startswith("-")] or [str(p) for p in SAMPLES]
        options = [a for a in argv if a.startswith("-")] or ["--top-k", "3"]
        command = [flowers, "classify", *images, "--endpoint", endpoint, *options]
        print("$ flowers classify " + " ".join(Path(i).name for i in images) + " " + " ".join(options), flush=True)
        code = subprocess.run(command, check=False).returncode
        # The same photo through the direct-invoke endpoint, as JSON lines.
        print(f"\n$ flowers classify {SAMPLES[0].name} --endpoint {stack.rie_url} --json --top-k 1", flush=True)
        subprocess.run(
            [flowers, "classify", str(SAMPLES[0]), "--endpoint", stack.rie_url, "--json", "--top-k", "1"], check=False
        )
    finally:
        stack.stop()
    print("\nlocal stack stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
