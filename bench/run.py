"""``nox -s bench``: measure us against the reference, side by side, in one run. Writes BENCHMARKS.md.

Never part of CI. Every timing is repeated and reported as min / median / max
over repetitions, next to ratios measured in the same run (this machine is
noisy). Sections: reference vs ours (same timing loop), accuracy (the
evaluate pipeline), serving (handler stages, cold start through the RIE,
install size, a 5,000-invocation soak with memory sampling), hostile-input
memory (peak RSS per class of hostile image, each in a fresh handler
process), end to end (client over the local stack), plots. ``--only NAME``
runs some sections and merges them into ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"
DATA = Path(os.environ.get("FLOWERS_DATA", ROOT.parent / "shared" / "datasets" / "oxford102"))
MODEL_DIR = ROOT / "model" / "artifacts"
REFERENCE_ACCURACY = 0.924  # the reference project's validation accuracy (its own report)
FLOWER = ROOT / "tests" / "fixtures" / "flowers" / "077-passion-flower.jpg"


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": float(min(values)), "median": float(statistics.median(values)), "max": float(max(values))}


def fmt(s: dict[str, float], unit: str = "ms", digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


#: The instructions int8 inference runs faster with (the float32 reference gains far less from them), so the
#: speed ratio depends on which of them the CPU has: the report names them.
INT8_INSTRUCTIONS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def machine() -> dict[str, Any]:
    """What the timings were measured on: OS, CPU model and its int8-relevant instructions, cores, Python."""
    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() in ("flags", "Features"):  # x86 names them flags, ARM Features
                flags = set(value.split())
            if cpu and flags:
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "int8_instructions": [name for name in INT8_INSTRUCTIONS if name in flags],
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def describe_machine(m: dict[str, Any]) -> str:
    return f"{m['platform']}, {_machine_key(m)}, Python {m['python']}"


def _machine_key(m: dict[str, Any]) -> str:
    """What makes timings comparable: the CPU, its int8 instructions and the cores (not kernel or Python)."""
    instructions = ", ".join(m.get("int8_instructions") or []) or "no int8 extensions"
    return f"{m.get('cpu', '?')} ({instructions}), {m['cores']} cores"


def _other_machines(results: dict[str, Any]) -> str:
    """A sentence naming sections kept from runs on another machine than the last one, if any."""
    here = _machine_key(results.get("machine") or machine())
    others: dict[str, list[str]] = {}
    for section, key in results.get("section_machines", {}).items():
        if key != here and section in results:
            others.setdefault(key, []).append(section)
    return "".join(f"Kept from a run on another machine ({key}): {', '.join(names)}. " for key, names in others.items())


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --- models: the reference architecture and ours, timed the same way -----------------------------------------


def build_reference(path: Path) -> None:
    """Keras Xception(weights=None) 299x299 + GAP + Dense(1000, relu) + Dense(102): the reference's compute."""
    import tensorflow as tf

    base = tf.keras.applications.Xception(weights=None, include_top=False, input_shape=(299, 299, 3))
    inputs = tf.keras.Input(shape=(299, 299, 3))
    x = tf.keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    x = tf.keras.layers.Dense(1000, activation="relu")(x)
    outputs = tf.keras.layers.Dense(102)(x)
    model = tf.keras.Model(inputs, outputs)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())


def time_tflite(path: Path, threads: int, *, reps: int, n: int) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    loads, p50s, p95s, all_ms = [], [], [], []
    for _ in range(reps):
        started = time.perf_counter()
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        loads.append((time.perf_counter() - started) * 1000)
        detail = interpreter.get_input_details()[0]
        x = np.random.default_rng(0).uniform(0, 255, detail["shape"]).astype(np.float32)
        scale, zero_point = detail["quantization"]
        if np.issubdtype(detail["dtype"], np.integer) and scale:
            x = np.clip(np.round(x / scale) + zero_point, -128, 127)
        x = x.astype(detail["dtype"])
        for _ in range(3):  # warm-up
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            times.append((time.perf_counter() - started) * 1000)
        p50s.append(percentile(times, 50))
        p95s.append(percentile(times, 95))
        all_ms.extend(times)
    return {
        "size_mb": path.stat().st_size / 1e6,
        "load_ms": spread(loads),
        "p50": spread(p50s),
        "p95": spread(p95s),
        "samples": all_ms,
    }


def bench_models(reps: int, float_model: Path | None) -> dict[str, Any]:
    reference = OUT / "reference-xception.tflite"
    if not reference.exists():
        print("building the reference Xception TFLite (random weights, same compute)...", flush=True)
        build_reference(reference)
    models = {
        "reference (Xception 299, float32)": reference,
        "ours (EfficientNet-Lite0 224, shipped)": MODEL_DIR / "flowers.tflite",
    }
    if float_model and float_model.exists():
        models["ours, float32 before quantisation"] = float_model
    results: dict[str, Any] = {}
    for name, path in models.items():
        for threads in (1, 2):
            n = 30 if "reference" in name else 200
            print(f"timing {name} on {threads} thread(s)...", flush=True)
            results[f"{name}|{threads}"] = time_tflite(path, threads, reps=reps, n=n)
    return results


# --- serving ----------------------------------------------------------------------------------------------------


def jpeg_of_side(side: int) -> bytes:
    img = Image.open(FLOWER).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def bench_handler(reps: int) -> dict[str, Any]:
    from flowers_serving import Classifier

    classifier = Classifier.from_env()
    images = {f"{side}px": jpeg_of_side(side) for side in (300, 500, 2000)}
    unsure = _unsure_flower(classifier)
    if unsure is not None:
        images[f"unsure flower ({unsure[0]})"] = unsure[1]
    results = {}
    for name, data in images.items():
        keys = ["decode_ms", "preprocess_ms", "infer_ms"]
        if "second_look_ms" in classifier.classify(data, top_k=10).timings_ms:
            keys.append("second_look_ms")
        per_rep: dict[str, list[float]] = {"total": [], **{key: [] for key in keys}}
        p95: list[float] = []
        for _ in range(reps):
            totals: list[float] = []
            stages: dict[str, list[float]] = {key: [] for key in keys}
            for _ in range(100):
                started = time.perf_counter()
                result = classifier.classify(data, top_k=10)
                totals.append((time.perf_counter() - started) * 1000)
                for key in stages:
                    stages[key].append(result.timings_ms[key])
            per_rep["total"].append(percentile(totals, 50))
            p95.append(percentile(totals, 95))
            for key in stages:
                per_rep[key].append(percentile(stages[key], 50))
        results[name] = {"bytes": len(data), **{k: spread(v) for k, v in per_rep.items()}, "p95": spread(p95)}
    return results


def _unsure_flower(classifier: Any) -> tuple[str, bytes] | None:
    """The first validation photo that takes the second look (a flower the model is unsure of), if any."""
    from flowers_model.data import load_split

    if classifier.second_look_below is None or not DATA.exists():
        return None
    for example in load_split(DATA, "validation"):
        data = example.path.read_bytes()
        if "second_look_ms" in classifier.classify(data, top_k=1).timings_ms:
            return example.path.name, data
    return None


def bench_not_a_flower(reps: int) -> dict[str, Any]:
    """classify() with and without the "not a flower" scorer, interleaved in one loop, and the scorer alone."""
    from flowers_serving import Classifier
    from flowers_serving.imaging import load_image

    classifier = Classifier.from_env()
    scorer = classifier.scorer
    if scorer is None:
        return {"skipped": "the shipped model has no not-a-flower scorer"}
    data = jpeg_of_side(500)
    pixels = load_image(data, classifier.info.input_size)
    features = classifier.run(pixels)[1]
    assert features is not None
    head = classifier.head
    with_scorer: list[float] = []
    without: list[float] = []
    alone: list[float] = []
    head_alone: list[float] = []
    for _ in range(reps):
        runs: dict[str, list[float]] = {"with": [], "without": [], "alone": [], "head": []}
        for _ in range(100):
            for key, active in (("with", scorer), ("without", None)):
                classifier.scorer = active
                started = time.perf_counter()
                classifier.classify(data, top_k=5)
                runs[key].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            scorer.score(features)
            runs["alone"].append((time.perf_counter() - started) * 1000)
            if head is not None:  # the refit last layer: the greyscale test on the input, then its logits
                started = time.perf_counter()
                head.for_pixels(pixels).logits(features)
                runs["head"].append((time.perf_counter() - started) * 1000)
        classifier.scorer = scorer
        with_scorer.append(percentile(runs["with"], 50))
        without.append(percentile(runs["without"], 50))
        alone.append(percentile(runs["alone"], 50))
        if runs["head"]:
            head_alone.append(percentile(runs["head"], 50))
    return {
        "with_ms": spread(with_scorer),
        "without_ms": spread(without),
        "scorer_ms": spread(alone),
        **({"head_ms": spread(head_alone)} if head_alone else {}),
        "added_share": statistics.median(with_scorer) / statistics.median(without) - 1,
        "bank_images": int(scorer.bank.shape[0]),
        "stats_mb": round((ROOT / "model" / "artifacts" / "flower_score.npz").stat().st_size / 1e6, 2),
    }


def _rie_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("FLOWERS_")}


def bench_cold_start(reps: int) -> dict[str, Any]:
    from flowers_serving.local.rie import RieWorker

    body = {"image": base64.b64encode(FLOWER.read_bytes()).decode(), "top_k": 1}
    times = []
    for i in range(reps):
        port = 19500 + i
        started = time.perf_counter()
        worker = RieWorker(port).start(wait=30)
        try:
            while True:
                try:
                    reply = requests.post(worker.url, json=body, timeout=60).json()
                    break
                except requests.ConnectionError:
                    time.sleep(0.01)
            assert reply["predictions"][0]["class_id"] == 77, reply
            times.append((time.perf_counter() - started) * 1000)
        finally:
            worker.stop()
    return {"ms": spread(times), "samples": times}


def _site_packages_mb(*requirements: str) -> dict[str, Any]:
    """Site-packages of a fresh venv after ``pip install REQUIREMENTS`` (bytecode compiled, as pip does)."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements], check=True
        )
        litert = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('ai-edge-litert'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        site = next((venv / "lib").glob("python*/site-packages"))
        # pip and setuptools (with pkg_resources, before Python 3.12) come with every venv; they are not ours.
        venv_own = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")
        sizes = {
            d.name: sum(f.stat().st_size for f in ([d] if d.is_file() else d.rglob("*")) if f.is_file())
            for d in site.iterdir()
            if not d.name.startswith(venv_own)
        }
    largest = sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:6]
    return {
        "mb": sum(sizes.values()) / 1e6,
        "ai_edge_litert": litert,
        "largest": [(name, size / 1e6) for name, size in largest],
    }


def bench_install_size() -> dict[str, Any]:
    serving = ROOT / "packages" / "flowers-serving"
    return {
        "default": _site_packages_mb(f"{serving}[litert]"),
        # What the extra's upper bound saves: the same install with the newest LiteRT.
        "newest_litert": _site_packages_mb(str(serving), "ai-edge-litert>=2.1.2"),
    }


def _runtime_rss_kb(rie_pid: int) -> int:
    """Resident memory of the Python runtime the RIE started (its child process)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().split()
            if int(stat[3]) == rie_pid:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def bench_soak(n: int) -> dict[str, Any]:
    from flowers_serving.local.rie import RieWorker

    hostile = ROOT / "tests" / "fixtures" / "hostile"
    good = base64.b64encode(FLOWER.read_bytes()).decode()
    bodies: list[dict[str, Any]] = [
        {"image": good},
        {"image": base64.b64encode((hostile / "truncated.jpg").read_bytes()).decode()},
        {"image": base64.b64encode((hostile / "bomb.png").read_bytes()).decode()},
        {"image": base64.b64encode((hostile / "not-an-image.jpg").read_bytes()).decode()},
        {"image": base64.b64encode((hostile / "cmyk.jpg").read_bytes()).decode()},
        {"image": "%%%"},
        {"image": good, "top_k": 500},
        {"url": "http://169.254.169.254/latest/meta-data/"},
        {},
    ]
    samples: list[tuple[int, int]] = []
    statuses: dict[str, int] = {}
    crashes = 0
    session = requests.Session()
    with RieWorker(19400) as worker:
        assert worker.pid is not None
        for i in range(n):
            try:
                reply = session.post(worker.url, json=bodies[i % len(bodies)], timeout=30).json()
                key = reply["error"]["code"] if "error" in reply else ("ok" if "predictions" in reply else "other")
                if "errorType" in reply:
                    crashes += 1
            except (requests.RequestException, ValueError):
                crashes += 1
                key = "no-answer"
            statuses[key] = statuses.get(key, 0) + 1
            if i % 250 == 0 or i == n - 1:
                samples.append((i, _runtime_rss_kb(worker.pid)))
    warm = [kb for i, kb in samples if i >= 500]  # after warm-up: allocator pools are filled
    growth = (warm[-1] - min(warm)) / min(warm) if warm else 0.0
    return {
        "n": n,
        "crashes": crashes,
        "statuses": statuses,
        "rss_mb_first": samples[0][1] / 1024,
        "rss_mb_after_warmup": warm[0] / 1024,
        "rss_mb_last": samples[-1][1] / 1024,
        "growth": growth,
        "samples": samples,
    }


# --- end to end -------------------------------------------------------------------------------------------------


#: Lambda's memory sizes worth naming (it accepts any MB from 128 to 10,240).
LAMBDA_SIZES_MB = (128, 256, 384, 512, 640, 768, 1024, 1536, 2048)
#: What the sandbox holds beside the handler process's RSS (runtime interface client
#: buffers, the extension API, page cache for the model file): kept free on top of the peak.
SANDBOX_HEADROOM = 0.10


def bench_hostile_memory() -> dict[str, Any]:
    """Peak RSS of the real handler (model loaded) per hostile image class, each in a fresh process."""
    sys.path.insert(0, str(ROOT / "tests"))
    from hostile import CLASSES

    probe = ROOT / "packages" / "flowers-serving" / "tests" / "rss_probe.py"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CLASSES:
            path = Path(tmp) / case.name
            path.write_bytes(case.make())
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, str(probe), str(path)], capture_output=True, text=True, timeout=600, check=True
            ).stdout.splitlines()
            line, summary = json.loads(out[0]), json.loads(out[-1])
            rows.append(
                {
                    "class": case.name,
                    "file_bytes": path.stat().st_size,
                    "answer": line["code"] or "ok",
                    "expected": case.code or "ok",
                    "peak_rss_mb": line["peak_rss_mb"],
                    "request_s": line.get("seconds"),
                    "baseline_rss_mb": summary["baseline_rss_mb"],
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(f"   {case.name}: {line['peak_rss_mb']} MB ({line['code'] or 'ok'})", flush=True)
    peak = max(r["peak_rss_mb"] for r in rows)
    needed = peak * (1 + SANDBOX_HEADROOM)
    smallest = next(size for size in LAMBDA_SIZES_MB if size >= needed)
    return {"rows": rows, "max_peak_rss_mb": peak, "smallest_memory_mb": smallest}


def bench_end_to_end(reps: int) -> dict[str, Any]:
    import flowers_client
    from flowers_serving.local.__main__ import LocalStack

    sys.path.insert(0, str(ROOT / "model" / "src"))
    from flowers_model.data import load_split

    images = [e.path for e in load_split(DATA, "validation")[:200]]
    results: dict[str, Any] = {"single": {}, "throughput": {}}
    for workers in (1, 2):
        with LocalStack(port=19300, gateway_port=19390, workers=workers) as stack:
            endpoint = f"{stack.gateway_url}/predict"
            with flowers_client.FlowersClient(endpoint) as client:
                if workers == 1:
                    p50s, p95s = [], []
                    for _ in range(reps):
                        times = []
                        for path in images[:100]:
                            started = time.perf_counter()
                            client.classify(path, top_k=5)
                            times.append((time.perf_counter() - started) * 1000)
                        p50s.append(percentile(times, 50))
                        p95s.append(percentile(times, 95))
                    results["single"] = {"p50": spread(p50s), "p95": spread(p95s)}
                for concurrency in (1, 2, 4):
                    rates = []
                    for _ in range(reps):
                        started = time.perf_counter()
                        items = client.classify_many(images, concurrency=concurrency, top_k=5)
                        elapsed = time.perf_counter() - started
                        assert all(item.ok for item in items), [i.error for i in items if not i.ok][:3]
                        rates.append(len(images) / elapsed)
                    results["throughput"][f"{workers}|{concurrency}"] = spread(rates)
    return results


def bench_client_import(reps: int) -> dict[str, Any]:
    times = []
    for _ in range(reps):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time; t=time.perf_counter(); import flowers_client; print((time.perf_counter()-t)*1000)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout.strip()))
    return {"ms": spread(times)}


def bench_accuracy(extra: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for model in [MODEL_DIR, *extra]:
        if not model.exists():
            continue
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "flowers_model.evaluate",
                "--data",
                str(DATA),
                "--split",
                "validation",
                "--model",
                str(model),
                "--out",
                str(OUT / "reports"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "model" / "src")},
            cwd=ROOT,  # evaluate reports model_file relative to the repository (or by name), never absolute
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


# --- report -----------------------------------------------------------------------------------------------------


def plots(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results["models"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key, value in models.items():
        name, threads = key.split("|")
        if threads == "1":
            ax.hist(value["samples"], bins=60, alpha=0.6, label=f"{name} (p50 {value['p50']['median']:.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("ms per image, 1 thread, LiteRT (log scale)")
    ax.set_ylabel("invocations")
    ax.set_title("Latency distribution: ours vs the reference architecture")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "latency.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ref = models["reference (Xception 299, float32)|1"]["p50"]["median"]
    ax.scatter([ref], [REFERENCE_ACCURACY * 100], s=80, color="grey")
    ax.annotate(
        "reference Xception (92.4%, reported)",
        (ref, REFERENCE_ACCURACY * 100),
        xytext=(-150, 8),
        textcoords="offset points",
        fontsize=8,
    )
    keys = {
        "flowers.tflite": "ours (EfficientNet-Lite0 224, shipped)",
        "flowers-float32.tflite": "ours, float32 before quantisation",
    }
    for row in results["accuracy"]:
        name = keys.get(Path(row["model_file"]).name)
        if name is None or f"{name}|1" not in models:
            continue
        ms = models[f"{name}|1"]["p50"]["median"]
        ax.scatter([ms], [row["top1"] * 100], s=80)
        ax.annotate(
            f"{name} ({row['top1']:.1%})",
            (ms, row["top1"] * 100),
            xytext=(8, -12 if "float" in name else 4),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("ms per image, 1 thread (log scale)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title("Accuracy vs speed")
    fig.tight_layout()
    fig.savefig(OUT / "accuracy-vs-speed.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for workers in (1, 2):
        xs = [1, 2, 4]
        ys = [results["end_to_end"]["throughput"][f"{workers}|{c}"]["median"] for c in xs]
        lo = [results["end_to_end"]["throughput"][f"{workers}|{c}"]["min"] for c in xs]
        hi = [results["end_to_end"]["throughput"][f"{workers}|{c}"]["max"] for c in xs]
        ax.errorbar(
            xs,
            ys,
            yerr=[np.subtract(ys, lo), np.subtract(hi, ys)],
            marker="o",
            capsize=4,
            label=f"{workers} RIE worker(s)",
        )
    ax.set_xticks([1, 2, 4])
    ax.set_xlabel("classify_many concurrency")
    ax.set_ylabel("images per second")
    ax.set_title("Client throughput over the local stack (2 cores shared by all)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "throughput.png", dpi=110)
    plt.close(fig)


def _portable(command: str) -> str:
    """The command with no path of this machine: relative to the repository, or ``.../name`` outside it."""
    words = [Path(w) if os.path.isabs(w) else w for w in command.split()]
    return " ".join(
        w if isinstance(w, str) else w.relative_to(ROOT).as_posix() if w.is_relative_to(ROOT) else f".../{w.name}"
        for w in words
    )


def _not_a_flower_methods() -> list[str]:
    """The method comparison that `nox -s not_a_flower` measured (model/reports/not-a-flower.json)."""
    path = ROOT / "model" / "reports" / "not-a-flower.json"
    if not path.exists():
        return []
    report = json.loads(path.read_text())
    lines = [
        f"Methods compared by `nox -s not_a_flower` ({report['validation_flowers']} validation flowers against "
        f"{sum(report['nonflowers'].values())} non-flower images; each method's threshold keeps "
        f"{report['accept']:.1%} of the flowers; scoring cost per image on features already computed):",
        "",
        "| method | AUROC | FPR at 95% TPR | non-flowers accepted | ms/image | statistics |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in report["methods"]:
        lines.append(
            f"| {m['method']} | {m['auroc']:.4f} | {m['fpr_at_95_tpr']:.1%} | {m['nonflowers_accepted']:.1%} | "
            f"{m['score_ms_per_image']:.3f} | {m['stats_mb']:.2f} MB |"
        )
    return [*lines, ""]


def write_report(results: dict[str, Any], command: str) -> None:
    models = results["models"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{_portable(command)}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
        + (
            " Sections it did not run are those of the last full run, kept in bench/results.json."
            if "--only" in command
            else ""
        ),
        "",
        f"Machine: {describe_machine(results.get('machine') or machine())}. "
        + _other_machines(results)
        + "Every timing is the median of repetitions with (min–max) beside it; "
        "ratios are of medians from this same run.",
        "",
        "## Ours vs the reference architecture",
        "",
        "Same timing loop for both (LiteRT, one fixed input, 3 warm-up calls). The reference is Keras Xception "
        "(weights=None) at 299×299 + GlobalAveragePooling + Dense(1000, relu) + Dense(102), exported to float32 "
        "TFLite: the compute of the reference project's model.",
        "",
        "| model | threads | size | load | p50 | p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, v in models.items():
        name, threads = key.split("|")
        lines.append(
            f"| {name} | {threads} | {v['size_mb']:.1f} MB | {fmt(v['load_ms'])} | {fmt(v['p50'], digits=2)} | "
            f"{fmt(v['p95'], digits=2)} |"
        )
    ours_key = "ours (EfficientNet-Lite0 224, shipped)"
    ref_key = "reference (Xception 299, float32)"
    lines += ["", "| ratio (reference / ours) | 1 thread | 2 threads |", "| --- | ---: | ---: |"]
    lines.append(f"| size | {models[ref_key + '|1']['size_mb'] / models[ours_key + '|1']['size_mb']:.1f}× smaller | |")
    speed = [models[f"{ref_key}|{t}"]["p50"]["median"] / models[f"{ours_key}|{t}"]["p50"]["median"] for t in (1, 2)]
    lines.append(f"| p50 latency | {speed[0]:.1f}× faster | {speed[1]:.1f}× faster |")
    lines += [
        "",
        "![latency](bench/latency.png)",
        "",
        "## Accuracy (validation split, through the serving path)",
        "",
        "| model file | top-1 | top-5 | ECE | NLL | infer p50 (1 thread) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| reference Xception (reported by the reference project) | {REFERENCE_ACCURACY:.1%} | – | – | – | "
        f"{models[ref_key + '|1']['p50']['median']:.0f} ms (measured above) |",
    ]
    for row in results["accuracy"]:
        lines.append(
            f"| {Path(row['model_file']).name} | {row['top1']:.2%} | {row['top5']:.2%} | {row['ece']:.2%} | "
            f"{row['nll']:.3f} | {row['infer_ms_p50']:.2f} ms |"
        )
    lines += [
        "",
        "![accuracy vs speed](bench/accuracy-vs-speed.png)",
        "",
        "## Serving",
        "",
        "`Classifier.classify` (what the handler calls) on JPEG bytes of three sizes, one thread; 100 calls per "
        "repetition; and on the first validation photo the model is unsure of, which takes the second look (the "
        "mirror image: a second inference).",
        "",
        "| image | bytes | total p50 | total p95 | decode | preprocess | infer | second look |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for side, v in results["handler"].items():
        second = fmt(v["second_look_ms"], digits=2) if "second_look_ms" in v else "–"
        lines.append(
            f"| {side} | {v['bytes']:,} | {fmt(v['total'], digits=2)} | {fmt(v['p95'], digits=2)} | "
            f"{fmt(v['decode_ms'], digits=2)} | {fmt(v['preprocess_ms'], digits=2)} | {fmt(v['infer_ms'], digits=2)} "
            f"| {second} |"
        )
    cold = results["cold_start"]
    soak = results["soak"]
    install = results["install"]
    lines += [
        "",
        f"- **Cold start** through the real RIE (process start → first prediction, {len(cold['samples'])} runs): "
        f"{fmt(cold['ms'], digits=0)}.",
        f"- **Install size** of a fresh venv with `pip install flowers-serving[litert]` (site-packages with "
        f"bytecode, pip/setuptools excluded): {install['default']['mb']:.0f} MB with ai-edge-litert "
        f"{install['default']['ai_edge_litert']}; largest: "
        + ", ".join(f"{n} {s:.0f} MB" for n, s in install["default"]["largest"])
        + f". The same with the newest ai-edge-litert ({install['newest_litert']['ai_edge_litert']}, which bundles "
        f"a WebGPU accelerator): {install['newest_litert']['mb']:.0f} MB.",
        f"- **Soak**: {soak['n']:,} mixed good/bad invocations through the RIE: {soak['crashes']} crashes; "
        f"runtime RSS {soak['rss_mb_first']:.0f} MB at the start, {soak['rss_mb_after_warmup']:.0f} MB after 500, "
        f"{soak['rss_mb_last']:.0f} MB at the end ({soak['growth']:+.1%} after warm-up). Answers: "
        + ", ".join(f"{k} {v}" for k, v in sorted(soak["statuses"].items()))
        + ".",
        f"- **Client import**: `import flowers_client` {fmt(results['client_import']['ms'])}.",
        "",
    ]
    naf = results.get("not_a_flower")
    if naf and "skipped" not in naf:
        lines += [
            "## Not a flower",
            "",
            f"`Classifier.classify` of a 500 px photo with and without the k-NN scorer ({naf['bank_images']:,} "
            f"training photos in an int8 bank, `flower_score.npz` {naf['stats_mb']:.1f} MB), interleaved in one loop: "
            f"with {fmt(naf['with_ms'], digits=2)}, without {fmt(naf['without_ms'], digits=2)}, the scorer alone "
            f"{fmt(naf['scorer_ms'], digits=3)}: it adds **{naf['added_share']:.1%}** to the time per image "
            "(budget 20%).",
            "",
        ]
        if "head_ms" in naf:
            lines += [
                f"The refit last layer alone (the greyscale test on the input, then its matrix-vector product): "
                f"{fmt(naf['head_ms'], digits=3)} per photo.",
                "",
            ]
        lines += _not_a_flower_methods()
    if "hostile_memory" in results:
        mem = results["hostile_memory"]
        lines += [
            "## Memory per hostile input",
            "",
            "Peak RSS of the handler process (model loaded, each class in a fresh process, the kernel's VmHWM "
            "reset just before the request) for small files that decode to huge arrays or carry metadata Pillow would "
            "walk for seconds (`tests/hostile.py`; they are also the serving tests' 512 MB check), and the time of "
            "the handler call alone (on a shared 2-core machine).",
            "",
            "| class | file | answer | peak RSS | request time |",
            "| --- | ---: | --- | ---: | ---: |",
        ]
        for r in mem["rows"]:
            flag = "" if r["answer"] == r["expected"] else f" (expected {r['expected']})"
            took = f"{r['request_s']:.2f} s" if r.get("request_s") is not None else "–"
            lines.append(
                f"| {r['class']} | {r['file_bytes']:,} B | {r['answer']}{flag} | {r['peak_rss_mb']:.0f} MB | {took} |"
            )
        lines += [
            "",
            f"Highest peak: **{mem['max_peak_rss_mb']:.0f} MB**; the smallest Lambda memory size that holds it with "
            f"{SANDBOX_HEADROOM:.0%} to spare: **{mem['smallest_memory_mb']} MB**.",
            "",
        ]
    lines += [
        "## End to end (client → local API Gateway front → RIE → handler)",
        "",
    ]
    e2e = results["end_to_end"]
    lines.append(
        f"Single calls (100 validation photos, 1 worker): p50 {fmt(e2e['single']['p50'])}, "
        f"p95 {fmt(e2e['single']['p95'])}."
    )
    lines += [
        "",
        "`classify_many` of 200 validation photos (images per second; the client shares the 2 cores):",
        "",
        "| RIE workers | concurrency 1 | concurrency 2 | concurrency 4 | speed-up at 4 |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for workers in (1, 2):
        t = e2e["throughput"]
        row = [fmt(t[f"{workers}|{c}"], unit="img/s") for c in (1, 2, 4)]
        ratio = t[f"{workers}|4"]["median"] / t[f"{workers}|1"]["median"]
        lines.append(f"| {workers} | " + " | ".join(row) + f" | {ratio:.2f}× |")
    lines += ["", "![throughput](bench/throughput.png)", ""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every timing (default 3)")
    parser.add_argument("--soak", type=int, default=5000, help="invocations in the soak test")
    parser.add_argument("--float-model", type=Path, help="also time and evaluate this float32 .tflite")
    parser.add_argument("--report-only", action="store_true", help="redraw plots and BENCHMARKS.md from results.json")
    parser.add_argument("--only", action="append", help="run only this section (repeatable); merged into results.json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    if args.report_only:
        results = json.loads((OUT / "results.json").read_text())
        plots(results)
        kept = [a for a in argv if a != "--report-only"]
        write_report(results, "nox -s bench" + (" -- " + " ".join(kept) if kept else ""))
        return 0
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("models", lambda: bench_models(args.reps, args.float_model)),
        ("accuracy", lambda: bench_accuracy([args.float_model] if args.float_model else [])),
        ("handler", lambda: bench_handler(args.reps)),
        ("not_a_flower", lambda: bench_not_a_flower(args.reps)),
        ("cold_start", lambda: bench_cold_start(10)),
        ("install", bench_install_size),
        ("soak", lambda: bench_soak(args.soak)),
        ("hostile_memory", bench_hostile_memory),
        ("end_to_end", lambda: bench_end_to_end(args.reps)),
        ("client_import", lambda: bench_client_import(10)),
    ]
    results: dict[str, Any] = {}
    if args.only:
        steps = [(name, step) for name, step in steps if name in args.only]
        if (OUT / "results.json").exists():
            results = json.loads((OUT / "results.json").read_text())
    here = machine()
    results.pop("earlier_machine", None)  # an older layout of this file
    results["machine"] = here
    for name, step in steps:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = step()
        results.setdefault("section_machines", {})[name] = _machine_key(here)
        print(f"   done in {time.perf_counter() - started:.0f} s", flush=True)
        (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.only:  # a partial run keeps the plots of the last full one
        plots(results)
    write_report(results, "nox -s bench" + (" -- " + " ".join(argv) if argv else ""))
    print((ROOT / "BENCHMARKS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
