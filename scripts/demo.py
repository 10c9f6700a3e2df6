"""The main job end to end: ``nox -s demo``.

Starts the local stack (the real Lambda RIE running the handler with the
shipped model, behind the local API Gateway front), classifies the sample
flower photos with the ``flowers`` CLI exactly as a user would, prints the
table, and stops the stack. Extra arguments are passed to ``flowers classify``
(e.g. ``nox -s demo -- my-photo.jpg --top-k 3``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

from flowers_serving.local import free_port
from flowers_serving.local.__main__ import LocalStack

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "tests" / "fixtures" / "flowers").glob("*.jpg"))


def port_or_free(preferred: int) -> int:
    """The usual port if it is free (8080 / 3000), else any free one."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    return free_port()


def main(argv: list[str]) -> int:
    flowers = shutil.which("flowers")
    if flowers is None:
        print("demo: the `flowers` CLI is not installed (run this through `nox -s demo`)", file=sys.stderr)
        return 1
    print("starting the local stack (Lambda RIE + API Gateway front)...", flush=True)
    with LocalStack(port=port_or_free(8080), gateway_port=port_or_free(3000), workers=1) as stack:
        endpoint = f"{stack.gateway_url}/predict"
        print(f"  POST {endpoint}\n  POST {stack.rie_url}\n", flush=True)
        images = [a for a in argv if not a.startswith("-")] or [str(p) for p in SAMPLES]
        options = [a for a in argv if a.startswith("-")] or ["--top-k", "3"]
        command = [flowers, "classify", *images, "--endpoint", endpoint, *options]
        print("$ flowers classify " + " ".join(Path(i).name for i in images) + " " + " ".join(options), flush=True)
        code = subprocess.run(command, check=False).returncode
        # The same photo through the emulator's direct-invoke endpoint, as JSON lines.
        print(f"\n$ flowers classify {SAMPLES[0].name} --endpoint {stack.rie_url} --json --top-k 1", flush=True)
        subprocess.run(
            [flowers, "classify", str(SAMPLES[0]), "--endpoint", stack.rie_url, "--json", "--top-k", "1"], check=False
        )
    print("\nlocal stack stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
