"""Fetch an image from an untrusted URL, as an attacker would aim it.

* http and https only; anything else is :class:`ForbiddenURL`.
* ``requests-hardened`` resolves the host once and connects to the address it
  checked (no DNS rebinding); that address, and any IP literal in the URL,
  must pass :mod:`flowers_serving.addresses` (public unicast only, no
  IPv4-embedding or deprecated IPv6 form) before a connection opens. Every
  redirect hop is checked again.
* At most :data:`MAX_REDIRECTS` redirects, followed here without reading
  their bodies.
* One deadline (:mod:`flowers_serving.deadline`, 20 s by default) covers DNS,
  connect, headers, every hop and the body, inside API Gateway's 29 s; the
  connect and read timeouts bound each single wait within it. Running out of
  time is 504 ``upstream_timeout``; a broken connection is 502 ``upstream_error``.
* The body is streamed and abandoned as soon as it passes the byte cap,
  whatever ``Content-Length`` claimed; compressed transfer is refused up front
  (``Accept-Encoding: identity``, and a compressed reply is refused) so the
  cap counts real bytes.
* The ``Content-Type`` must be an image type we decode (or a generic binary
  type, since S3 and many CDNs serve photos as ``application/octet-stream``);
  the bytes are sniffed again by the decoder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests_hardened.ip_filter import InvalidIPAddress

from flowers_serving.addresses import forbidden_reason, parse_ip
from flowers_serving.deadline import Deadline, GuardedAdapter, running
from flowers_serving.errors import (
    ForbiddenURL,
    PayloadTooLarge,
    ServingError,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = ["ALLOWED_CONTENT_TYPES", "FetchSettings", "Fetcher"]

logger = logging.getLogger(__name__)

ALLOWED_CONTENT_TYPES: Final = frozenset(
    {
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
        "image/tiff",
        "application/octet-stream",
        "binary/octet-stream",
    }
)
MAX_REDIRECTS: Final = 3
MAX_URL_LENGTH: Final = 2048
_CHUNK: Final = 64 * 1024

#: Only for the local stack's tests: lets the fetcher reach 127.0.0.0/8.
ENV_ALLOW_LOOPBACK: Final = "FLOWERS_ALLOW_LOOPBACK_URLS"


@dataclass(frozen=True)
class FetchSettings:
    max_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    # Whole fetch, redirects included. With ~1 s of model work this keeps a
    # request well inside API Gateway's 29 s integration timeout.
    total_timeout: float = 20.0
    allow_loopback: bool = False

    @classmethod
    def from_env(cls) -> FetchSettings:
        allow = os.environ.get(ENV_ALLOW_LOOPBACK, "").lower() in ("1", "true", "yes")
        if allow:
            logger.warning(
                "%s is on: URLs may point at 127.0.0.0/8. This is for local testing only; never set it in AWS.",
                ENV_ALLOW_LOOPBACK,
            )
        return cls(
            max_bytes=int(os.environ.get("FLOWERS_MAX_IMAGE_BYTES", cls.max_bytes)),
            connect_timeout=float(os.environ.get("FLOWERS_FETCH_CONNECT_TIMEOUT", cls.connect_timeout)),
            read_timeout=float(os.environ.get("FLOWERS_FETCH_READ_TIMEOUT", cls.read_timeout)),
            total_timeout=float(os.environ.get("FLOWERS_FETCH_TOTAL_TIMEOUT", cls.total_timeout)),
            allow_loopback=allow,
        )


class _Session(requests.Session):
    """A session that never looks at redirects: :meth:`Fetcher._follow` does.

    requests reads a redirect's whole body before following it, and even with
    ``allow_redirects=False`` (to offer ``Response.next``); a server can make
    that body endless.
    """

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


class Fetcher:
    """Downloads images. One per process; the session's pools are reused across requests."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        session = _Session()
        for prefix, https in (("http://", False), ("https://", True)):
            session.mount(prefix, GuardedAdapter(is_https_proto=https, allow_loopback=settings.allow_loopback))
        session.trust_env = False  # no proxies or netrc credentials from the environment
        session.headers["User-Agent"] = "flowers-serving (+image fetch)"
        self._session = session

    def fetch(self, url: str, *, within: float | None = None) -> bytes:
        """The image at ``url``: every hop checked, all of it within ``total_timeout``.

        ``within``: fewer seconds than that, when the fetch is one of several
        sharing one deadline (a batch's downloads).
        """
        _check_url(url, allow_loopback=self.settings.allow_loopback)
        seconds = self.settings.total_timeout if within is None else min(within, self.settings.total_timeout)
        if seconds <= 0:
            raise self._timeout()
        with running(Deadline(seconds)) as deadline:
            try:
                return self._follow(url, deadline)
            except ServingError:
                if deadline.expired:
                    raise self._timeout() from None
                raise
            except InvalidIPAddress as exc:
                raise ForbiddenURL(
                    "the URL resolves to an address we do not fetch from (private, loopback or reserved)"
                ) from exc
            except (
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
            ) as exc:
                raise ForbiddenURL(f"the URL is not a valid http(s) URL: {exc}") from exc
            except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError) as exc:
                raise self._timeout() from exc
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                # A connection the deadline shut down fails as a broken one: say which it was.
                if deadline.expired:
                    raise self._timeout() from exc
                raise UpstreamError(f"could not fetch the image: {type(exc).__name__}") from exc

    def _timeout(self) -> UpstreamTimeout:
        return UpstreamTimeout(f"the image URL did not answer within {self.settings.total_timeout:g} s")

    def _follow(self, url: str, deadline: Deadline) -> bytes:
        # Redirects are followed here, not by requests, which would read each
        # redirect's body to the end (however long the server makes it).
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._session.get(
                url,
                stream=True,
                allow_redirects=False,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                headers={"Accept": "image/*", "Accept-Encoding": "identity"},
            )
            with response:
                if response.is_redirect:
                    try:
                        url = urljoin(url, response.headers["Location"])
                    except ValueError as exc:  # e.g. "http://[::1/": urljoin parses the netloc
                        raise ForbiddenURL(
                            f"the image URL redirected to a location that cannot be parsed: {exc}"
                        ) from exc
                    _check_url(url, allow_loopback=self.settings.allow_loopback)
                    continue
                if response.status_code != 200:
                    raise UpstreamError(f"the image URL answered HTTP {response.status_code}")
                _check_content_type(response.headers.get("Content-Type"))
                declared = response.headers.get("Content-Length", "")
                if declared.isascii() and declared.isdigit() and int(declared) > self.settings.max_bytes:
                    raise PayloadTooLarge(
                        f"the image is {int(declared):,} bytes; the limit is {self.settings.max_bytes:,}"
                    )
                return self._read_capped(response, deadline)
        raise UpstreamError(f"the image URL redirected more than {MAX_REDIRECTS} times")

    def _read_capped(self, response: requests.Response, deadline: Deadline) -> bytes:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise UnsupportedMediaType(f"the URL sent a {encoding}-compressed body; we asked for identity")
        chunks: list[bytes] = []
        size = 0
        while True:
            # read1 returns whatever has arrived (up to _CHUNK) instead of waiting for a full chunk.
            chunk = response.raw.read1(_CHUNK)
            if deadline.expired:
                raise self._timeout()
            if not chunk:
                break
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise PayloadTooLarge(f"the image is larger than the {self.settings.max_bytes:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)


def _check_url(url: str, *, allow_loopback: bool = False) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise ForbiddenURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ForbiddenURL(f"the URL cannot be parsed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ForbiddenURL("only http and https URLs are fetched")
    if not hostname:
        raise ForbiddenURL("the URL has no host")
    if parts.username or parts.password:
        raise ForbiddenURL("URLs with credentials are not fetched")
    ip = parse_ip(hostname)
    if ip is not None:
        reason = forbidden_reason(ip, allow_loopback=allow_loopback)
        if reason is not None:
            article = "an" if reason[0] in "aeiouAEIOU" else "a"
            raise ForbiddenURL(f"the URL points at {ip}, {article} {reason} address; we do not fetch from it")


def _check_content_type(value: str | None) -> None:
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type not in ALLOWED_CONTENT_TYPES:
        raise UnsupportedMediaType(f"the URL served {media_type or 'no content type'}, not an image")
