"""The URL fetcher against a hostile server on loopback, and the SSRF guard against address tricks."""

from __future__ import annotations

import time

import pytest
from upstream import Upstream

from flowers_serving.errors import (
    ForbiddenURL,
    PayloadTooLarge,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
)
from flowers_serving.fetch import Fetcher, FetchSettings

LOOPBACK_OK = FetchSettings(
    allow_loopback=True, connect_timeout=1, read_timeout=1, total_timeout=3, max_bytes=2 * 1024 * 1024
)


@pytest.fixture(scope="module")
def fetcher() -> Fetcher:
    return Fetcher(LOOPBACK_OK)


@pytest.fixture(scope="module")
def guarded() -> Fetcher:
    return Fetcher(FetchSettings())  # the production default: loopback refused


def test_fetches_an_image(fetcher: Fetcher, upstream: Upstream, flower_bytes: bytes) -> None:
    assert fetcher.fetch(upstream.url("/flower.jpg")) == flower_bytes
    assert fetcher.fetch(upstream.url("/flower-octet")) == flower_bytes
    assert fetcher.fetch(upstream.url("/redirect")) == flower_bytes


def test_loopback_is_refused_by_default(guarded: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(ForbiddenURL):
        guarded.fetch(upstream.url("/flower.jpg"))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://[fd00:ec2::254]/latest/meta-data/",  # EC2 IPv6 metadata (unique local)
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # CGNAT
        "http://0.0.0.0/",
        "http://224.0.0.1/",  # multicast
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, mapped and in hex
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0x7f000001/",  # ... in hex
        "http://127.1/",  # ... shortened
        "http://localhost/",
    ],
)
def test_ssrf_targets_are_refused(guarded: Fetcher, url: str) -> None:
    with pytest.raises(ForbiddenURL):
        guarded.fetch(url)


def test_private_addresses_stay_refused_with_the_loopback_switch(fetcher: Fetcher) -> None:
    for url in ("http://169.254.169.254/", "http://10.0.0.1/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(ForbiddenURL):
            fetcher.fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x.jpg",
        "gopher://127.0.0.1/",
        "http://user:pw@example.com/x.jpg",
        "http:///nohost",
        "http://" + "a" * 3000 + ".com/",
    ],
)
def test_bad_urls_are_refused(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(ForbiddenURL):
        fetcher.fetch(url)


def test_every_redirect_hop_is_checked(fetcher: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(ForbiddenURL):
        fetcher.fetch(upstream.url("/redirect-metadata"))
    with pytest.raises(ForbiddenURL):
        fetcher.fetch(upstream.url("/redirect-file"))


def test_redirect_loops_stop(fetcher: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(UpstreamError, match="redirected"):
        fetcher.fetch(upstream.url("/redirect-loop"))


@pytest.mark.parametrize("path", ["/missing", "/error"])
def test_upstream_errors(fetcher: Fetcher, upstream: Upstream, path: str) -> None:
    with pytest.raises(UpstreamError, match="HTTP"):
        fetcher.fetch(upstream.url(path))


def test_content_type_allow_list(fetcher: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(UnsupportedMediaType, match="text/html"):
        fetcher.fetch(upstream.url("/page.html"))


def test_declared_size_over_the_cap_is_refused_before_reading(fetcher: Fetcher, upstream: Upstream) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge):
        fetcher.fetch(upstream.url("/huge-declared"))
    assert time.monotonic() - started < 2


def test_endless_body_is_cut_at_the_cap(fetcher: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(PayloadTooLarge):
        fetcher.fetch(upstream.url("/endless"))


def test_slow_server_times_out(fetcher: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(UpstreamTimeout):
        fetcher.fetch(upstream.url("/slow"))


def test_trickling_server_meets_the_total_deadline(fetcher: Fetcher, upstream: Upstream) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        fetcher.fetch(upstream.url("/trickle"))
    # total_timeout (3 s) + at most one read timeout (1 s), not the 20 s the server would take.
    assert time.monotonic() - started < 5


def test_unreachable_port_is_an_upstream_error(fetcher: Fetcher) -> None:
    with pytest.raises(UpstreamError):
        fetcher.fetch("http://127.0.0.1:9/flower.jpg")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FLOWERS_ALLOW_LOOPBACK_URLS", "1")
    monkeypatch.setenv("FLOWERS_MAX_IMAGE_BYTES", "1234")
    settings = FetchSettings.from_env()
    assert settings.allow_loopback
    assert settings.max_bytes == 1234
    assert "local testing only" in caplog.text
    monkeypatch.delenv("FLOWERS_ALLOW_LOOPBACK_URLS")
    assert not FetchSettings.from_env().allow_loopback
