"""The cost arithmetic of deploy/cost.py, against figures worked out by hand."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(DEPLOY))

import cost  # noqa: E402
import measure  # noqa: E402
from cost import Measured, Setting, cost_per_million_images  # noqa: E402

# 10 ms per request at 1,024 MB, 20 ms at 512 MB; a 100,000-byte request, a 1,000-byte reply, 500 bytes of log.
MEASURED = Measured(
    mean_ms={(1024, "v1"): 10.0, (1024, "v2"): 10.0, (512, "v1"): 20.0, (512, "v2"): 19.2},
    request_body_bytes=100_000,
    response_body_bytes=1_000,
    log_bytes_per_request=500,
)
PLATFORM_LOG = sum(len(line) for line in cost.PLATFORM_LOG_LINES)


def test_rest_api_x86_1024_single_image_by_hand() -> None:
    got = cost_per_million_images(Setting("RestApi", "x86_64", 1024), MEASURED)
    assert got.billed_ms_per_request == 10
    assert got.front_door == pytest.approx(3.50)
    assert got.lambda_requests == pytest.approx(0.20)
    # 1,000,000 requests x 0.010 s x 1 GB x $0.0000166667
    assert got.compute == pytest.approx(0.166667)
    assert got.data_out == pytest.approx(1e6 * (1_000 + cost.REPLY_HEADER_BYTES) / 2**30 * 0.09)
    assert got.logs == pytest.approx(1e6 * (500 + PLATFORM_LOG) / 2**30 * 0.50)
    assert got.total == pytest.approx(got.front_door + got.lambda_requests + got.compute + got.data_out + got.logs)


def test_function_url_has_no_front_door_charge() -> None:
    got = cost_per_million_images(Setting("FunctionUrl", "x86_64", 512), MEASURED)
    assert got.front_door == 0
    # v2 event at 512 MB: 19.2 ms billed as 20 ms; 1e6 x 0.020 s x 0.5 GB x $0.0000166667
    assert got.billed_ms_per_request == 20
    assert got.compute == pytest.approx(0.166667)


def test_http_api_meters_each_512_kb_of_request() -> None:
    single = cost_per_million_images(Setting("HttpApi", "x86_64", 1024), MEASURED)
    assert single.front_door == pytest.approx(1.00)
    # 16 x 100,000 bytes = 1,600,000 bytes = 3.05 x 512 KiB -> 4 metered requests per HTTP request
    batch = cost_per_million_images(Setting("HttpApi", "x86_64", 1024, 16), MEASURED)
    assert cost.front_door_units(Setting("HttpApi", "x86_64", 1024, 16), MEASURED) == 4
    assert batch.front_door == pytest.approx(1e6 / 16 * 4 * 1.00e-6)
    exactly = Measured(MEASURED.mean_ms, 512 * 1024, 1_000, 500)
    assert cost.front_door_units(Setting("HttpApi", "x86_64", 1024), exactly) == 1
    over = Measured(MEASURED.mean_ms, 512 * 1024 + 1, 1_000, 500)
    assert cost.front_door_units(Setting("HttpApi", "x86_64", 1024), over) == 2
    assert cost.front_door_units(Setting("RestApi", "x86_64", 1024, 16), MEASURED) == 1


def test_batches_share_per_request_charges_not_compute() -> None:
    single = cost_per_million_images(Setting("RestApi", "x86_64", 1024), MEASURED)
    batch = cost_per_million_images(Setting("RestApi", "x86_64", 1024, 16), MEASURED)
    assert batch.billed_ms_per_request == 160  # 16 x 10 ms, rounded once
    assert batch.compute == pytest.approx(single.compute)
    assert batch.front_door == pytest.approx(single.front_door / 16)
    assert batch.lambda_requests == pytest.approx(single.lambda_requests / 16)
    assert batch.logs == pytest.approx(single.logs / 16)
    # The reply grows with the batch; its headers are shared.
    assert batch.data_out == pytest.approx(1e6 / 16 * (16 * 1_000 + cost.REPLY_HEADER_BYTES) / 2**30 * 0.09)
    with pytest.raises(ValueError, match="1 to 16"):
        cost_per_million_images(Setting("RestApi", "x86_64", 1024, 17), MEASURED)


def test_measured_batches_use_their_own_figures() -> None:
    """A measured batch of 16 (150 ms, 1.4 MB request, 14 KB reply, 900 bytes of log) replaces the model."""
    measured = dataclasses.replace(
        MEASURED,
        batch_mean_ms={(1024, "v2"): 150.4},
        batch_request_body_bytes=1_400_000,
        batch_response_body_bytes=14_000,
        batch_log_bytes_per_request=900,
    )
    batch = cost_per_million_images(Setting("HttpApi", "x86_64", 1024, 16), measured)
    assert batch.billed_ms_per_request == 151  # measured, rounded once (the model would say 160)
    assert batch.front_door == pytest.approx(1e6 / 16 * 3 * 1.00e-6)  # 1.4 MB: three 512 KB units
    assert batch.data_out == pytest.approx(1e6 / 16 * (14_000 + cost.REPLY_HEADER_BYTES) / 2**30 * 0.09)
    assert batch.logs == pytest.approx(1e6 / 16 * (900 + PLATFORM_LOG) / 2**30 * 0.50)
    assert cost._how(Setting("HttpApi", "x86_64", 1024, 16), measured) == "measured"
    # Not measured for the v1 event at this size: modelled, and said so.
    modelled = Setting("RestApi", "x86_64", 1024, 16)
    assert cost_per_million_images(modelled, measured).billed_ms_per_request == 160
    assert cost._how(modelled, measured) == "batch modelled"
    assert cost._how(Setting("HttpApi", "arm64", 1024, 16), measured) == "arm64 assumed"


def test_rounding_up_to_the_millisecond() -> None:
    odd = Measured({(1024, "v1"): 10.01, (1024, "v2"): 10.0}, 100_000, 1_000, 500)
    assert cost.billed_ms(Setting("RestApi", "x86_64", 1024), odd) == 11
    assert cost.billed_ms(Setting("HttpApi", "x86_64", 1024), odd) == 10


def test_arm64_price_and_assumed_speed() -> None:
    x86 = cost_per_million_images(Setting("FunctionUrl", "x86_64", 1024), MEASURED)
    arm = cost_per_million_images(Setting("FunctionUrl", "arm64", 1024), MEASURED)
    assert arm.billed_ms_per_request == math.ceil(10.0 / cost.ARM64_SPEEDUP)
    assert arm.compute == pytest.approx(1e6 * arm.billed_ms_per_request / 1000 * 0.0000133334)
    assert arm.compute < x86.compute
    # 20% off per GB-second: arm64 stays cheaper unless it is 25% slower.
    ratio = cost.PRICES["lambda_gb_second_x86_64"].usd / cost.PRICES["lambda_gb_second_arm64"].usd
    assert ratio == pytest.approx(1.25, rel=1e-4)


def test_every_price_has_a_source_and_the_date_is_written_down() -> None:
    assert cost.PRICES_CHECKED.count("-") == 2
    for price in cost.PRICES.values():
        assert price.source.startswith("https://aws.amazon.com/")
        assert price.usd >= 0
    assert cost.PRICES["rest_api_request"].shown() == "$3.50 per million requests"
    assert cost.PRICES["http_api_request"].shown() == "$1.00 per million requests"
    assert cost.PRICES["lambda_gb_second_arm64"].shown() == "$0.0000133334 per GB-second"


def test_cpu_share_is_proportional_up_to_one_vcpu() -> None:
    assert measure.cpu_share(1769) == 1.0
    assert measure.cpu_share(3538) == 1.0
    assert measure.cpu_share(512) == pytest.approx(512 / 1769)


def test_template_default_is_the_recommended_setting() -> None:
    default = cost.template_default()
    assert (default.front_door, default.arch, default.memory_mb) == ("FunctionUrl", "arm64", 512)


def test_table_marks_today_and_the_recommendation() -> None:
    today, rec = Setting(*cost.TODAY), Setting("FunctionUrl", "arm64", 512)  # type: ignore[arg-type]
    table = cost.render_table(cost.all_settings(), MEASURED, today=today, recommended=rec)
    lines = table.splitlines()
    assert len(lines) == 2 + 24  # 3 front doors x 2 architectures x 2 memory sizes x (1 or 16 images)
    (today_line,) = [line for line in lines if "(today)" in line]
    assert "| 1.00× |" in today_line
    (rec_line,) = [line for line in lines if "(recommended)" in line]
    ratio = cost_per_million_images(rec, MEASURED).total / cost_per_million_images(today, MEASURED).total
    assert f"| {ratio:.2f}× |" in rec_line


def test_replace_between_markers() -> None:
    text = "a\n<!-- t:start -->\nold\n<!-- t:end -->\nb\n"
    assert cost.replace_between_markers(text, "t", "new") == "a\n<!-- t:start -->\nnew\n<!-- t:end -->\nb\n"
    with pytest.raises(ValueError, match="one"):
        cost.replace_between_markers("no markers", "t", "new")


def test_saved_results_give_the_readme_tables() -> None:
    """The committed figures and the READMEs agree: rerunning the report changes nothing."""
    results = json.loads((DEPLOY / "cost-results.json").read_text())
    bench_file = DEPLOY.parent / "bench" / "results.json"
    full, short = cost._report(results, json.loads(bench_file.read_text()))
    assert full.strip() in (DEPLOY / "README.md").read_text()
    assert short.strip() in (DEPLOY.parent / "README.md").read_text()
    measured = Measured.from_results(results)
    today = cost_per_million_images(Setting(*cost.TODAY), measured).total  # type: ignore[arg-type]
    recommended = cost_per_million_images(cost.template_default(), measured).total
    assert recommended <= today / 3
