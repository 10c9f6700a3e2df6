"""The URL fetcher against a hostile server on loopback, and the SSRF guard against address tricks."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import urllib3.util.connection
from upstream import Upstream

from flowers_serving.addresses import forbidden_reason, parse_ip
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


def test_a_redirect_to_an_unparsable_location_is_a_forbidden_url(fetcher: Fetcher, upstream: Upstream) -> None:
    with pytest.raises(ForbiddenURL, match="cannot be parsed"):
        fetcher.fetch(upstream.url("/redirect-unparsable"))


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


# --- One deadline for the whole fetch -------------------------------------------------------------
# Each hostile route below would hold a request for 30 s or more; every single read on it is quick
# enough for the read timeout (2 s), so only the total deadline (3 s) can stop it. The elapsed-time
# bounds are loose on purpose (the deadline plus 10 s): they tell "stopped by the deadline" from
# "ran to the end", not how fast the machine is.
PATIENT = FetchSettings(allow_loopback=True, connect_timeout=2, read_timeout=20, total_timeout=3)


@pytest.fixture(scope="module")
def patient() -> Fetcher:
    return Fetcher(PATIENT)


@pytest.mark.parametrize("path", ["/stall-headers", "/trickle-headers", "/slow-redirect/3", "/trickle"])
def test_the_deadline_covers_headers_redirects_and_body(patient: Fetcher, upstream: Upstream, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="3 s"):
        patient.fetch(upstream.url(path))
    assert time.monotonic() - started < PATIENT.total_timeout + 10


def test_a_slow_redirect_chain_within_the_deadline_still_works(upstream: Upstream, flower_bytes: bytes) -> None:
    roomy = Fetcher(FetchSettings(allow_loopback=True, read_timeout=5, total_timeout=8))
    assert roomy.fetch(upstream.url("/slow-redirect/1")) == flower_bytes


def test_dns_is_inside_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that never answers (mocked: the only edge here we do not own) costs the deadline, no more."""
    release = threading.Event()

    def stuck_resolver(*args: object, **kwargs: object) -> list[object]:
        release.wait(30)
        raise socket.gaierror("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", stuck_resolver)
    fetcher = Fetcher(FetchSettings(total_timeout=1))
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout):
            fetcher.fetch("http://images.example.com/rose.jpg")
        assert time.monotonic() - started < 11
    finally:
        release.set()


@pytest.mark.parametrize("path", ["/reset-mid-body", "/short-body"])
def test_broken_connections_are_upstream_errors(fetcher: Fetcher, upstream: Upstream, path: str) -> None:
    with pytest.raises(UpstreamError):
        fetcher.fetch(upstream.url(path))


def test_redirect_bodies_are_never_read(fetcher: Fetcher, upstream: Upstream, flower_bytes: bytes) -> None:
    # The redirect's body is 256 MB; reading it would blow the 3 s deadline (and the memory).
    assert fetcher.fetch(upstream.url("/redirect-endless-body")) == flower_bytes


# --- SSRF: every address form that can reach inside, refused before any socket opens ---------------
REFUSED_URLS = [
    # IPv6 forms that embed an IPv4 address.
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::7f00:1]/", "IPv4-compatible"),
    ("http://[::a9fe:a9fe]/", "IPv4-compatible"),
    ("http://[::ffff:127.0.0.1]/", "mapped"),
    ("http://[::ffff:a9fe:a9fe]/", "mapped"),
    ("http://[::ffff:0:7f00:1]/", "SIIT"),
    ("http://[::ffff:0:a9fe:a9fe]/", "SIIT"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64"),
    ("http://[64:ff9b::10.0.0.1]/", "NAT64"),
    ("http://[64:ff9b:1::a00:1]/", "NAT64"),
    ("http://[2002:7f00:1::1]/", "6to4"),
    ("http://[2002:a9fe:a9fe::1]/", "6to4"),
    ("http://[2002:a00:1::]/", "6to4"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "Teredo"),
    # Deprecated, local and special-purpose IPv6.
    ("http://[fec0::1]/", "site-local"),
    ("http://[fec0:0:0:ffff::1]/", "site-local"),
    ("http://[fd00:ec2::254]/", "unique-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[100::1]/", "discard"),
    ("http://[2001:db8::1]/", "documentation"),
    # IPv4.
    ("http://0.0.0.0/", "this network"),
    ("http://127.0.0.1/", "loopback"),
    ("http://169.254.169.254/", "link-local"),
    ("http://100.64.0.1/", "carrier-grade"),
    ("http://192.0.0.170/", "IETF"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://10.0.0.1:8080/", "private"),
]


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records (and refuses) every outgoing connection and DNS lookup the fetcher attempts."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError(f"a socket was opened: {args}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS, ids=[u for u, _ in REFUSED_URLS])
def test_ip_literals_are_refused_before_any_socket(
    guarded: Fetcher, no_sockets: list[object], url: str, reason: str
) -> None:
    with pytest.raises(ForbiddenURL, match=reason):
        guarded.fetch(url)
    assert no_sockets == []


RESOLVED = sorted({str(urlsplit(u).hostname) for u, _ in REFUSED_URLS})


@pytest.mark.parametrize("address", [a for a in RESOLVED if "%" not in a])
def test_host_names_resolving_there_are_refused_before_connecting(
    guarded: Fetcher, no_sockets: list[object], monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def resolver(host: str, port: object, *args: object, **kwargs: object) -> list[object]:
        return [(family, socket.SOCK_STREAM, 6, "", (address, 80) if family == socket.AF_INET else (address, 80, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(ForbiddenURL):
        guarded.fetch("http://images.example.com/rose.jpg")
    assert no_sockets == []


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"])
def test_public_addresses_pass_the_policy(address: str) -> None:
    ip = parse_ip(address)
    assert ip is not None
    assert forbidden_reason(ip) is None
    assert forbidden_reason(ip, allow_loopback=True) is None


def test_the_loopback_switch_opens_loopback_only() -> None:
    for address, allowed in [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::127.0.0.1", False),
        ("10.0.0.1", False),
        ("fec0::1", False),
    ]:
        ip = parse_ip(address)
        assert ip is not None
        assert (forbidden_reason(ip, allow_loopback=True) is None) is allowed, address
