"""Fetch an image from an untrusted URL, as an attacker would aim it.

* http and https only; anything else is :class:`ForbiddenURL`.
* ``requests-hardened`` resolves the host once, refuses private, loopback,
  link-local (169.254.169.254 included), CGNAT, multicast and IPv4-mapped
  IPv6 addresses, and connects to the address it checked (no DNS rebinding).
  Its adapter runs for every connection, so every redirect hop is checked again.
* At most :data:`MAX_REDIRECTS` redirects.
* Connect/read timeouts plus a total deadline, all inside API Gateway's 29 s.
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
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import requests
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress

from flowers_serving.errors import ForbiddenURL, PayloadTooLarge, UnsupportedMediaType, UpstreamError, UpstreamTimeout

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


class Fetcher:
    """Downloads images. One per process; the session's pools are reused across requests."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        manager = Manager(
            Config(
                ip_filter_enable=True,
                ip_filter_allow_loopback_ips=settings.allow_loopback,
                never_redirect=False,
                default_timeout=(settings.connect_timeout, settings.read_timeout),
                user_agent_override="flowers-serving (+image fetch)",
            )
        )
        self._session = manager.get_session()
        self._session.max_redirects = MAX_REDIRECTS
        self._session.trust_env = False  # no proxies or netrc credentials from the environment

    def fetch(self, url: str) -> bytes:
        _check_url(url)
        deadline = time.monotonic() + self.settings.total_timeout
        try:
            with self._session.get(
                url,
                stream=True,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                headers={"Accept": "image/*", "Accept-Encoding": "identity"},
            ) as response:
                # Redirect targets were fetched by requests; check their scheme too.
                _check_url(response.url)
                if response.status_code != 200:
                    raise UpstreamError(f"the image URL answered HTTP {response.status_code}")
                _check_content_type(response.headers.get("Content-Type"))
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
                    raise PayloadTooLarge(
                        f"the image is {int(declared):,} bytes; the limit is {self.settings.max_bytes:,}"
                    )
                return self._read_capped(response, deadline)
        except InvalidIPAddress as exc:
            raise ForbiddenURL(
                "the URL resolves to an address we do not fetch from (private, loopback or reserved)"
            ) from exc
        except requests.exceptions.TooManyRedirects as exc:
            raise UpstreamError(f"the image URL redirected more than {MAX_REDIRECTS} times") from exc
        except (
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
        ) as exc:
            raise ForbiddenURL(f"the URL is not a valid http(s) URL: {exc}") from exc
        except requests.exceptions.Timeout as exc:
            raise UpstreamTimeout("the image URL did not answer in time") from exc
        except requests.exceptions.RequestException as exc:
            raise UpstreamError(f"could not fetch the image: {type(exc).__name__}") from exc

    def _read_capped(self, response: requests.Response, deadline: float) -> bytes:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise UnsupportedMediaType(f"the URL sent a {encoding}-compressed body; we asked for identity")
        chunks: list[bytes] = []
        size = 0
        while True:
            # read1 returns whatever has arrived (up to _CHUNK) instead of waiting
            # for a full chunk, so a server trickling bytes meets the deadline
            # check below after at most one read timeout.
            chunk = response.raw.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise PayloadTooLarge(f"the image is larger than the {self.settings.max_bytes:,}-byte limit")
            if time.monotonic() > deadline:
                raise UpstreamTimeout(f"the image took longer than {self.settings.total_timeout:g} s to download")
            chunks.append(chunk)
        return b"".join(chunks)


def _check_url(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise ForbiddenURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ForbiddenURL(f"the URL cannot be parsed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ForbiddenURL("only http and https URLs are fetched")
    if not parts.hostname:
        raise ForbiddenURL("the URL has no host")
    if parts.username or parts.password:
        raise ForbiddenURL("URLs with credentials are not fetched")


def _check_content_type(value: str | None) -> None:
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type not in ALLOWED_CONTENT_TYPES:
        raise UnsupportedMediaType(f"the URL served {media_type or 'no content type'}, not an image")
