"""Cost per million images for each front door and function setting, from measured latency: ``nox -s cost``.

Runs ``deploy/measure.py`` (the real handler and model at the CPU share of 512, 1,024 and 1,769 MB, side by side
in one run), writes the figures to ``deploy/cost-results.json`` and the tables into ``deploy/README.md`` and the
repository README (between their ``cost-table`` markers). ``--report-only`` redoes the tables from the saved
figures. Never part of CI.

What is measured, modelled and assumed is said in the report; the short of it:

* **measured** on this machine: billed milliseconds per request of the handler (x86_64 here), request, response
  and log bytes per request, for single images and for batch requests of 16;
* **modelled** only from results saved before batches were measured: a batch of 16 images costs 16 single
  requests' handler time rounded once (no compute saved, only the per-request charges shared); the response
  grows by one result per image; the log lines per request stay as they are;
* **assumed**: arm64 runs ``ARM64_SPEEDUP`` times as fast as x86_64 (AWS's Graviton2 claim; nothing here runs
  arm64), and the HTTP headers of a reply.

List prices are us-east-1 on-demand, first tier, without free tiers, as of ``PRICES_CHECKED``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "PRICES",
    "Breakdown",
    "Measured",
    "Setting",
    "cost_per_million_images",
    "main",
    "render_table",
    "replace_between_markers",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "deploy" / "cost-results.json"
BENCH = ROOT / "bench" / "results.json"
TEMPLATE = ROOT / "deploy" / "template.yaml"

FrontDoor = Literal["RestApi", "HttpApi", "FunctionUrl"]
Arch = Literal["x86_64", "arm64"]


@dataclass(frozen=True)
class Price:
    usd: float  # per one unit
    unit: str
    note: str
    source: str

    def shown(self) -> str:
        if 0 < self.usd < 1e-5:
            return f"${self.usd * 1e6:.2f} per million {self.unit}s"
        return (
            f"${self.usd:.10f}".rstrip("0").rstrip(".") + f" per {self.unit}"
            if self.usd < 0.01
            else f"${self.usd:.2f} per {self.unit}"
        )


PRICES_CHECKED: Final = "2026-11-25"
_APIGW: Final = "https://aws.amazon.com/api-gateway/pricing/"
_LAMBDA: Final = "https://aws.amazon.com/lambda/pricing/"
#: The one table of prices (us-east-1 list prices, USD). Checked on PRICES_CHECKED against the pages named.
PRICES: Final[dict[str, Price]] = {
    "rest_api_request": Price(3.50 / 1e6, "request", "REST API, first 333 million a month", _APIGW),
    "http_api_request": Price(
        1.00 / 1e6, "request", "HTTP API, first 300 million a month; metered per 512 KB (513 KB = 2)", _APIGW
    ),
    "function_url_request": Price(0.0, "request", "Lambda function URL: no charge beyond Lambda's own", _LAMBDA),
    "lambda_request": Price(0.20 / 1e6, "request", "Lambda requests", _LAMBDA),
    "lambda_gb_second_x86_64": Price(0.0000166667, "GB-second", "Lambda x86_64 duration, billed per 1 ms", _LAMBDA),
    "lambda_gb_second_arm64": Price(0.0000133334, "GB-second", "Lambda arm64 duration, billed per 1 ms", _LAMBDA),
    "data_transfer_out_gb": Price(
        0.09,
        "GB",
        "data out to the internet, first 10 TB a month (100 GB a month free)",
        "https://aws.amazon.com/ec2/pricing/on-demand/",
    ),
    "logs_ingested_gb": Price(
        0.50,
        "GB",
        "CloudWatch Logs ingested (Lambda logs, first tier; EMF needs the Standard class)",
        "https://aws.amazon.com/cloudwatch/pricing/",
    ),
}
HTTP_API_METERING_BYTES: Final = 512 * 1024
GIB: Final = 2**30  # AWS bills data and logs per GB of 2^30 bytes

#: ASSUMED, not measured: AWS says Lambda on Graviton2 is "designed to deliver up to 19 percent better
#: performance at 20 percent lower cost" (https://aws.amazon.com/blogs/aws/aws-lambda-functions-powered-by-aws-
#: graviton2-processor-run-your-functions-on-arm-and-get-up-to-34-better-price-performance/).
ARM64_SPEEDUP: Final = 1.19
#: ASSUMED: status line and headers of a reply (content-type, date, x-request-id, the gateway's ids).
REPLY_HEADER_BYTES: Final = 300
#: Lambda's own log lines per request (the documented text format), as ingested.
PLATFORM_LOG_LINES: Final = (
    "START RequestId: 3f5a7e9c-1b2d-4c6e-8f0a-9b8c7d6e5f4a Version: 12\n",
    "END RequestId: 3f5a7e9c-1b2d-4c6e-8f0a-9b8c7d6e5f4a\n",
    "REPORT RequestId: 3f5a7e9c-1b2d-4c6e-8f0a-9b8c7d6e5f4a\tDuration: 19.62 ms\tBilled Duration: 20 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 98 MB\t\n",
)
MAX_BATCH: Final = 16
FULL_VCPU_MB: Final = 1769
TODAY: Final = ("RestApi", "x86_64", 1024, 1)


@dataclass(frozen=True)
class Setting:
    front_door: FrontDoor
    arch: Arch
    memory_mb: int
    images_per_request: int = 1


@dataclass(frozen=True)
class Measured:
    """Per request, for one image sent inline, on x86_64."""

    mean_ms: dict[tuple[int, str], float]  # (memory MB, "v1" | "v2") -> mean handler ms at that CPU share
    request_body_bytes: int
    response_body_bytes: int
    log_bytes_per_request: float
    #: The same for one request of MAX_BATCH images (kinds "v1-batch16" / "v2-batch16"); empty: not measured.
    batch_mean_ms: dict[tuple[int, str], float] = field(default_factory=dict)
    batch_request_body_bytes: int = 0
    batch_response_body_bytes: int = 0
    batch_log_bytes_per_request: float = 0.0

    @classmethod
    def from_results(cls, results: dict[str, Any]) -> Measured:
        mean_ms = {
            (int(mb), kind): entry[kind]["mean_ms"]["median"]
            for mb, entry in results["memory"].items()
            for kind in ("v1", "v2")
        }
        batch_mean_ms = {
            (int(mb), kind): entry[f"{kind}-batch{MAX_BATCH}"]["mean_ms"]["median"]
            for mb, entry in results["memory"].items()
            for kind in ("v1", "v2")
            if f"{kind}-batch{MAX_BATCH}" in entry
        }
        return cls(
            mean_ms=mean_ms,
            request_body_bytes=results["request_body_bytes"],
            response_body_bytes=results["response_body_bytes"],
            log_bytes_per_request=results["log_bytes_per_request"],
            batch_mean_ms=batch_mean_ms,
            batch_request_body_bytes=results.get("batch_request_body_bytes", 0),
            batch_response_body_bytes=results.get("batch_response_body_bytes", 0),
            batch_log_bytes_per_request=results.get("batch_log_bytes_per_request", 0.0),
        )

    def batch_measured(self, setting: Setting) -> bool:
        """This setting's request is a batch whose handler time was measured (only batches of MAX_BATCH are)."""
        return (
            setting.images_per_request == MAX_BATCH
            and (setting.memory_mb, event_kind(setting.front_door)) in self.batch_mean_ms
        )


@dataclass(frozen=True)
class Breakdown:
    """USD per million images, by what AWS bills."""

    billed_ms_per_request: int
    front_door: float
    lambda_requests: float
    compute: float
    data_out: float
    logs: float

    @property
    def total(self) -> float:
        return self.front_door + self.lambda_requests + self.compute + self.data_out + self.logs


def event_kind(front_door: FrontDoor) -> str:
    """The event the function gets: REST API proxy (v1), or payload 2.0 from an HTTP API or a function URL."""
    return "v1" if front_door == "RestApi" else "v2"


def billed_ms(setting: Setting, measured: Measured) -> int:
    """Lambda bills each request's duration rounded up to the millisecond; a batch is rounded once."""
    key = (setting.memory_mb, event_kind(setting.front_door))
    if measured.batch_measured(setting):
        ms = measured.batch_mean_ms[key]
    else:
        ms = measured.mean_ms[key] * setting.images_per_request
    if setting.arch == "arm64":
        ms /= ARM64_SPEEDUP
    return math.ceil(ms)


def front_door_units(setting: Setting, measured: Measured) -> int:
    """Billable front-door requests per request: HTTP APIs meter each 512 KB of request as one."""
    if setting.front_door != "HttpApi":
        return 1
    if measured.batch_measured(setting):
        return math.ceil(measured.batch_request_body_bytes / HTTP_API_METERING_BYTES)
    return math.ceil(measured.request_body_bytes * setting.images_per_request / HTTP_API_METERING_BYTES)


def cost_per_million_images(setting: Setting, measured: Measured) -> Breakdown:
    if not 1 <= setting.images_per_request <= MAX_BATCH:
        raise ValueError(f"a request carries 1 to {MAX_BATCH} images")
    requests = 1e6 / setting.images_per_request
    door_price = {
        "RestApi": PRICES["rest_api_request"],
        "HttpApi": PRICES["http_api_request"],
        "FunctionUrl": PRICES["function_url_request"],
    }[setting.front_door].usd
    ms = billed_ms(setting, measured)
    gb_second = PRICES[f"lambda_gb_second_{setting.arch}"].usd
    if measured.batch_measured(setting):
        reply_bytes = measured.batch_response_body_bytes + REPLY_HEADER_BYTES
        log_bytes = measured.batch_log_bytes_per_request + sum(len(line) for line in PLATFORM_LOG_LINES)
    else:
        reply_bytes = measured.response_body_bytes * setting.images_per_request + REPLY_HEADER_BYTES
        log_bytes = measured.log_bytes_per_request + sum(len(line) for line in PLATFORM_LOG_LINES)
    return Breakdown(
        billed_ms_per_request=ms,
        front_door=requests * front_door_units(setting, measured) * door_price,
        lambda_requests=requests * PRICES["lambda_request"].usd,
        compute=requests * ms / 1000 * setting.memory_mb / 1024 * gb_second,
        data_out=requests * reply_bytes / GIB * PRICES["data_transfer_out_gb"].usd,
        logs=requests * log_bytes / GIB * PRICES["logs_ingested_gb"].usd,
    )


def all_settings() -> list[Setting]:
    return [
        Setting(door, arch, mb, n)
        for door in ("RestApi", "HttpApi", "FunctionUrl")
        for arch in ("x86_64", "arm64")
        for mb in (1024, 512)
        for n in (1, MAX_BATCH)
    ]


def template_default() -> Setting:
    """The setting deploy/template.yaml deploys when no parameter is given: what we recommend."""
    text = TEMPLATE.read_text()

    def default(name: str) -> str:
        match = re.search(rf"^  {name}:\n(?:    .*\n)*?    Default: (\S+)", text, re.MULTILINE)
        if not match:
            raise LookupError(f"no default for {name} in {TEMPLATE.name}")
        return match.group(1)

    door, arch = default("FrontDoor"), default("Architecture")
    assert door in ("RestApi", "HttpApi", "FunctionUrl")
    assert arch in ("x86_64", "arm64")
    return Setting(door, arch, int(default("MemorySize")))  # type: ignore[arg-type]


_DOOR_NAMES: Final = {"RestApi": "REST API", "HttpApi": "HTTP API", "FunctionUrl": "function URL"}


def _how(setting: Setting, measured: Measured) -> str:
    parts = []
    if setting.arch == "arm64":
        parts.append("arm64 assumed")
    if setting.images_per_request > 1 and not measured.batch_measured(setting):
        parts.append("batch modelled")
    return ", ".join(parts) or "measured"


def render_table(settings: list[Setting], measured: Measured, *, today: Setting, recommended: Setting) -> str:
    baseline = cost_per_million_images(today, measured).total
    lines = [
        "| front door | arch | MB | images / request | billed ms / request | front door $ | Lambda requests $ "
        "| compute $ | data out $ | logs $ | **$ per million images** | vs today | compute is |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for setting in settings:
        cost = cost_per_million_images(setting, measured)
        mark = " (today)" if setting == today else " **(recommended)**" if setting == recommended else ""
        lines.append(
            f"| {_DOOR_NAMES[setting.front_door]}{mark} | {setting.arch} | {setting.memory_mb} "
            f"| {setting.images_per_request} | {cost.billed_ms_per_request} | {cost.front_door:.3f} "
            f"| {cost.lambda_requests:.3f} | {cost.compute:.3f} | {cost.data_out:.3f} | {cost.logs:.3f} "
            f"| **{cost.total:.2f}** | {cost.total / baseline:.2f}× | {_how(setting, measured)} |"
        )
    return "\n".join(lines)


def replace_between_markers(text: str, name: str, content: str) -> str:
    """Swap what lies between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (both must be there once)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"expected one {start} ... {end} pair")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"


def _batch_note(results: dict[str, Any], measured: Measured) -> str:
    if not measured.batch_mean_ms:
        return (
            f"- **Modelled**: a batch of {MAX_BATCH} costs {MAX_BATCH} single requests' handler time rounded once "
            f"(compute is not\n  shared, only the per-request charges), a reply {MAX_BATCH} times as large, and the "
            "same log lines per request."
        )
    mem = results["memory"]
    per_size = "; ".join(
        f"{mb} MB: {mem[str(mb)][f'v2-batch{MAX_BATCH}']['mean_ms']['median']:.0f} ms "
        f"({mem[str(mb)][f'v2-batch{MAX_BATCH}']['mean_ms']['median'] / mem[str(mb)]['v2']['mean_ms']['median']:.1f}"
        f"× a single image's)"
        for mb in (512, 1024, FULL_VCPU_MB)
    )
    return (
        f"- **Batches measured** the same way: {results['batch_requests_per_round']} requests per round and event kind "
        f"of the same image {MAX_BATCH} times inline ({results['batch_request_body_bytes']:,}-byte request, "
        f"{results['batch_response_body_bytes']:,}-byte reply, {results['batch_log_bytes_per_request']:.0f} bytes of "
        f"log), mean handler time (v2) {per_size}. The model runs one image after the other, so a batch saves the "
        "per-request charges (front door, Lambda request, logs), not compute."
    )


def _report(results: dict[str, Any], bench: dict[str, Any] | None) -> tuple[str, str]:
    """(the full section for deploy/README.md, the short one for the repository README)."""
    measured = Measured.from_results(results)
    today, recommended = Setting(*TODAY), template_default()  # type: ignore[arg-type]
    base = cost_per_million_images(today, measured)
    rec = cost_per_million_images(recommended, measured)
    rec16 = cost_per_million_images(
        Setting(recommended.front_door, recommended.arch, recommended.memory_mb, MAX_BATCH), measured
    )
    http = cost_per_million_images(Setting("HttpApi", recommended.arch, recommended.memory_mb), measured)
    http16 = cost_per_million_images(Setting("HttpApi", recommended.arch, recommended.memory_mb, MAX_BATCH), measured)
    mem = results["memory"]
    share_note = "; ".join(
        f"{mb} MB: {mem[str(mb)]['v2']['mean_ms']['median']:.1f} ms mean "
        f"({mem[str(mb)]['v2']['mean_ms']['min']:.1f}–{mem[str(mb)]['v2']['mean_ms']['max']:.1f} over rounds), "
        f"{mem[str(mb)]['cpu_share_got']['median']:.2f} of a core used, {mem[str(mb)]['cpu_limit']}"
        for mb in (512, 1024, 1769)
    )
    if results.get("contended"):
        share_note += " — **the machine was busy during this run: a run got less than its CPU share**"
    if bench and "handler" in bench:
        quiet = bench["handler"]["500px"]["total"]["median"]
        full_core = mem[str(FULL_VCPU_MB)]["v2"]["mean_ms"]["median"]
        share_note += (
            f". This run's machine: {results.get('machine', 'not recorded')}. For scale, `nox -s bench` timed "
            f"`Classifier.classify` alone on the same image at {quiet:.2f} ms p50 on a full core of the host of its "
            f"run, {full_core / quiet:.1f}× faster than this run's full core per request"
        )
        if full_core > 1.5 * quiet:
            share_note += (
                ": the compute column is this machine's and likely overstates a Lambda vCPU's; it is a small part "
                "of every total"
            )
    cold = ""
    if bench and "cold_start" in bench:
        init_ms = bench["cold_start"]["ms"]["median"] / min(1.0, recommended.memory_mb / 1769)
        per_cold = init_ms / 1000 * recommended.memory_mb / 1024 * PRICES[f"lambda_gb_second_{recommended.arch}"].usd
        cold = (
            f" Cold starts are not in the table: Lambda bills the init phase too; scaling the measured "
            f"{bench['cold_start']['ms']['median']:.0f} ms (`nox -s bench`, full core) to the recommended setting's "
            f"CPU share gives about ${per_cold * 1e6:.1f} per million cold starts (modelled), so "
            f"+${per_cold * 1e4:.3f} per million images for each 1% of requests that start cold."
        )
    emf_cost = 1e6 * results["emf_bytes_per_request"] / GIB * PRICES["logs_ingested_gb"].usd
    ratio = rec.total / base.total
    verdict = "at or under a third of" if ratio <= 1 / 3 else "ABOVE a third of"
    full = f"""Generated by `nox -s cost` (`deploy/cost.py`) from `deploy/cost-results.json`; do not edit by hand.

Today (REST API, x86_64, 1,024 MB, one image per request) costs **${base.total:.2f} per million images**. The
recommended default, what `deploy/template.yaml` deploys without parameters ({_DOOR_NAMES[recommended.front_door]},
{recommended.arch}, {recommended.memory_mb} MB), costs **${rec.total:.2f}** for single images ({ratio:.2f}× today:
{verdict} today's cost) and **${rec16.total:.2f}** in batches of {MAX_BATCH}. An HTTP API at the same setting costs
${http.total:.2f} for single images ({http.total / base.total:.2f}×) and ${http16.total:.2f} in batches of {MAX_BATCH}
({http16.total / base.total:.2f}×): the choice when JWT auth or per-second throttling matter, best with batches.

{render_table(all_settings(), measured, today=today, recommended=recommended)}

How the figures are made (`{results["command"]}`, {results["rounds"]} rounds of {results["requests_per_round"]}
requests per event kind, interleaved):

- **Measured**: mean handler time per request (event JSON decoded, handler, reply encoded; metrics on) for a
  {results["image_bytes"]:,}-byte 500×500 JPEG sent inline ({results["request_body_bytes"]:,}-byte request), on one
  core of this machine standing in for a Lambda x86_64 vCPU, under a CPU quota of each memory size's share
  (memory / 1,769 MB; CFS period {results["cfs_period_us"] // 1000} ms): {share_note}. Requests run back to back, the
  worst case for a quota; an isolated short request may finish before the quota bites. The reply is
  {results["response_body_bytes"]:,} bytes; the function writes {results["log_bytes_per_request"]:.0f} bytes of log
  per request ({results["log_lines_per_request"]:.0f} lines: the request log line and the EMF metrics line, which
  alone is {results["emf_bytes_per_request"]:.0f} bytes or ${emf_cost:.2f} per million requests of log ingestion),
  plus Lambda's START/END/REPORT lines ({sum(len(line) for line in PLATFORM_LOG_LINES)} bytes). Every row runs the
  same code, metrics included.
- **Assumed**: arm64 runs {ARM64_SPEEDUP}× as fast as x86_64 (AWS's "up to 19 percent better performance" for
  Graviton2; not measured, nothing here runs arm64). arm64 stays cheaper per image unless it is more than
  {PRICES["lambda_gb_second_x86_64"].usd / PRICES["lambda_gb_second_arm64"].usd - 1:.0%} slower than x86_64. Reply
  headers: {REPLY_HEADER_BYTES} bytes.
{_batch_note(results, measured)}
  URL inputs add the download time, which the image host decides (+100 ms at 512 MB arm64 ≈
  +${100 / 1000 * 0.5 * PRICES["lambda_gb_second_arm64"].usd * 1e6:.2f} per million).{cold}
- Not in the table: X-Ray (`Tracing=Active`: $5.00 per million traces; the default sampling records every request
  below 1 per second, so it can cost more than the front door; the template's default is `PassThrough`), custom
  metrics ($0.30 per metric a month, about 20 here), alarms ($0.10 each a month), the dashboard ($3 a month),
  provisioned concurrency (billed per hour configured) and free tiers.

| list price (us-east-1, checked {PRICES_CHECKED}) | USD | source |
| --- | ---: | --- |
""" + "\n".join(f"| {p.note} | {p.shown()} | {p.source} |" for p in PRICES.values())
    rows = [
        Setting(*TODAY),  # type: ignore[arg-type]
        Setting("HttpApi", recommended.arch, recommended.memory_mb),
        Setting("HttpApi", recommended.arch, recommended.memory_mb, MAX_BATCH),
        recommended,
        Setting(recommended.front_door, recommended.arch, recommended.memory_mb, MAX_BATCH),
    ]
    short = f"""Generated by `nox -s cost`; the full table, the prices with their sources and what is measured, modelled
or assumed are in [deploy/README.md](deploy/README.md#cost-per-image).

{render_table(list(dict.fromkeys(rows)), measured, today=today, recommended=recommended)}"""
    return full, short


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report-only", action="store_true", help="tables from deploy/cost-results.json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nice", type=int, default=0, help="measure at this niceness (see deploy/measure.py)")
    args = parser.parse_args(argv)
    if not args.report_only:
        measured = subprocess.run(
            [
                sys.executable,
                str(ROOT / "deploy" / "measure.py"),
                *("--rounds", str(args.rounds)),
                *("--nice", str(args.nice)),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        RESULTS.write_text(measured)
    results = json.loads(RESULTS.read_text())
    bench = json.loads(BENCH.read_text()) if BENCH.exists() else None
    full, short = _report(results, bench)
    for path, name, content in (
        (ROOT / "deploy" / "README.md", "cost-table", full),
        (ROOT / "README.md", "cost-table", short),
    ):
        path.write_text(replace_between_markers(path.read_text(), name, content))
    print(short)
    return 0


if __name__ == "__main__":
    sys.exit(main())
