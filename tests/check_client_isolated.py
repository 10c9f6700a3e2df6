"""Run in a venv holding only flowers-client: it must import and work without
the serving or training stacks (no numpy, Pillow, LiteRT, torch)."""

from __future__ import annotations

import importlib.util
import sys
import time

started = time.perf_counter()
import flowers_client  # noqa: E402

elapsed_ms = (time.perf_counter() - started) * 1000
forbidden = ["flowers_serving", "flowers_model", "numpy", "PIL", "torch", "ai_edge_litert", "tflite_runtime"]
installed = [name for name in forbidden if importlib.util.find_spec(name) is not None]
loaded = [name for name in forbidden if name in sys.modules]
assert not installed, f"flowers-client pulled in {installed}"
assert not loaded, f"importing flowers_client loaded {loaded}"
assert "tqdm" not in sys.modules, "tqdm should load only when the CLI shows progress"
# One HTTP library (httpx) for both clients: requests is neither needed nor installed.
assert importlib.util.find_spec("requests") is None, "flowers-client pulled in requests"
assert isinstance(flowers_client.AsyncFlowersClient().transport, str)
result = flowers_client.top_k(
    [
        flowers_client.Prediction(label="a", class_id=1, score=0.2),
        flowers_client.Prediction(label="b", class_id=2, score=0.7),
    ],
    1,
)
assert result[0].label == "b"
names = len(flowers_client.__all__)
print(f"flowers-client {flowers_client.__version__} imports alone in {elapsed_ms:.0f} ms; public API: {names} names")
