"""The contract cases every serving path and the client are run against.

Each case is a request (built against the hostile upstream's base URL) and
what must come back: a status and, for errors, the stable error code from
``api.schema.json``. Cases that only make sense with an image body are
marked ``inline`` (the client sends those bytes itself).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures"
FLOWERS = sorted((FIXTURES / "flowers").glob("*.jpg"))
NONFLOWERS = sorted((FIXTURES / "nonflowers").glob("*.jpg"))
HOSTILE = FIXTURES / "hostile"


@cache
def schema() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((HERE / "api.schema.json").read_text())
    return result


def status_of(code: str) -> int:
    status: int = schema()["x-status-of-code"][code]
    return status


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Callable[[str], str]], dict[str, Any]]  # upstream.url -> request JSON
    status: int
    code: str | None = None
    class_id: int | None = None  # expected top-1 for good photos
    image: Path | None = None  # the image file, for clients that send bytes themselves
    tags: frozenset[str] = field(default_factory=frozenset)
    is_flower: bool | None = None  # the "not a flower" decision a result must carry
    reject: bool = False  # the request asks for 422 not_a_flower instead of a non-flower result

    def __str__(self) -> str:
        return self.name


def _image_case(path: Path, status: int, code: str | None = None, class_id: int | None = None) -> Case:
    return Case(f"image:{path.name}", lambda _u, p=path: {"image": b64(p), "top_k": 5}, status, code, class_id, path)


GOOD_PHOTOS = [
    Case(
        f"image:{p.name}",
        lambda _u, p=p: {"image": b64(p), "top_k": 5},
        200,
        class_id=int(p.name.split("-", 1)[0]),
        image=p,
        is_flower=True,
    )
    for p in FLOWERS
]

#: "Not a flower": every result says so; with ``reject`` the answer is 422 with the score and the top guesses.
NOT_A_FLOWER = [
    *[
        Case(f"nonflower:{p.name}", lambda _u, p=p: {"image": b64(p), "top_k": 5}, 200, image=p, is_flower=False)
        for p in NONFLOWERS
    ],
    *[
        Case(
            f"nonflower-reject:{p.name}",
            lambda _u, p=p: {"image": b64(p), "top_k": 5, "reject": True},
            422,
            "not_a_flower",
            image=p,
            reject=True,
        )
        for p in NONFLOWERS
    ],
    Case(
        "flower-reject",
        lambda _u: {"image": b64(FLOWERS[0]), "top_k": 5, "reject": True},
        200,
        class_id=int(FLOWERS[0].name.split("-", 1)[0]),
        image=FLOWERS[0],
        is_flower=True,
        reject=True,
    ),
    Case(
        "url:nonflower-reject",
        lambda u: {"url": u("/nonflower.jpg"), "top_k": 3, "reject": True},
        422,
        "not_a_flower",
        reject=True,
    ),
    # Bad input stays bad input, reject or not.
    Case(
        "reject-undecodable",
        lambda _u: {"image": b64(HOSTILE / "truncated.jpg"), "reject": True},
        422,
        "undecodable_image",
        image=HOSTILE / "truncated.jpg",
        reject=True,
    ),
    Case(
        "reject-not-a-boolean",
        lambda _u: {"image": b64(FLOWERS[0]), "reject": "yes"},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
]

CASES: list[Case] = [
    *GOOD_PHOTOS,
    *NOT_A_FLOWER,
    # Odd but valid images: converted to RGB and classified.
    *[
        _image_case(HOSTILE / n, 200)
        for n in ("alpha.png", "palette.gif", "cmyk.jpg", "grey16.png", "exif-rotated.jpg")
    ],
    # Bad images.
    _image_case(HOSTILE / "not-an-image.jpg", 415, "unsupported_media_type"),
    _image_case(HOSTILE / "truncated.jpg", 422, "undecodable_image"),
    _image_case(HOSTILE / "bomb.png", 413, "image_too_large"),
    # Under the pixel cap, over the decode-memory budget (refused from the header).
    _image_case(HOSTILE / "float32-6324x6324.tif", 413, "image_too_large"),
    _image_case(HOSTILE / "rgb-1x39999999.png", 413, "image_too_large"),
    # 16-bit greyscale, converted without full-size float temporaries.
    _image_case(HOSTILE / "grey16-2000x1500.png", 200),
    # Malformed requests.
    Case("empty-object", lambda _u: {}, 400, "bad_request", tags=frozenset({"raw"})),
    Case(
        "both-url-and-image",
        lambda u: {"url": u("/flower.jpg"), "image": b64(FLOWERS[0])},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    Case("url-not-a-string", lambda _u: {"url": 42}, 400, "bad_request", tags=frozenset({"raw"})),
    Case("image-not-base64", lambda _u: {"image": "%%% not base64 %%%"}, 400, "bad_request", tags=frozenset({"raw"})),
    Case("top-k-zero", lambda _u: {"image": b64(FLOWERS[0]), "top_k": 0}, 400, "bad_request", tags=frozenset({"raw"})),
    Case(
        "top-k-too-big",
        lambda _u: {"image": b64(FLOWERS[0]), "top_k": 103},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    Case(
        "top-k-not-int",
        lambda _u: {"image": b64(FLOWERS[0]), "top_k": "many"},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    Case(
        "top-k-numeric-string",
        lambda _u: {"image": b64(FLOWERS[0]), "top_k": "5"},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    Case(
        "top-k-superscript",
        lambda _u: {"image": b64(FLOWERS[0]), "top_k": "\u00b2"},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    Case(
        "top-k-float",
        lambda _u: {"image": b64(FLOWERS[0]), "top_k": 5.0},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    Case(
        "nested-too-deep",
        lambda _u: {"url": "https://example.com/a.jpg", "extra": json.loads("[" * 64 + "]" * 64)},
        400,
        "bad_request",
        tags=frozenset({"raw"}),
    ),
    # URLs: fetched by the service from the hostile upstream on loopback.
    Case("url:flower", lambda u: {"url": u("/flower.jpg"), "top_k": 3}, 200, class_id=54),
    Case("url:octet-stream", lambda u: {"url": u("/flower-octet")}, 200, class_id=54),
    Case("url:redirect", lambda u: {"url": u("/redirect")}, 200, class_id=54),
    Case("url:html", lambda u: {"url": u("/page.html")}, 415, "unsupported_media_type"),
    Case("url:text-as-jpeg", lambda u: {"url": u("/text-as-jpeg")}, 415, "unsupported_media_type"),
    Case("url:404", lambda u: {"url": u("/missing")}, 502, "upstream_error"),
    Case("url:500", lambda u: {"url": u("/error")}, 502, "upstream_error"),
    Case("url:redirect-loop", lambda u: {"url": u("/redirect-loop")}, 502, "upstream_error"),
    Case("url:redirect-to-metadata", lambda u: {"url": u("/redirect-metadata")}, 400, "forbidden_url"),
    Case("url:redirect-to-file", lambda u: {"url": u("/redirect-file")}, 400, "forbidden_url"),
    Case("url:metadata-ip", lambda _u: {"url": "http://169.254.169.254/latest/meta-data/"}, 400, "forbidden_url"),
    Case("url:private-ip", lambda _u: {"url": "http://10.0.0.1/flower.jpg"}, 400, "forbidden_url"),
    Case("url:mapped-ipv6", lambda _u: {"url": "http://[::ffff:169.254.169.254]/"}, 400, "forbidden_url"),
    # (raw: the client reads a non-http string as a local path and never sends it)
    Case("url:file-scheme", lambda _u: {"url": "file:///etc/passwd"}, 400, "forbidden_url", tags=frozenset({"raw"})),
    Case("url:slow", lambda u: {"url": u("/slow")}, 504, "upstream_timeout", tags=frozenset({"slow"})),
    Case("url:trickle", lambda u: {"url": u("/trickle")}, 504, "upstream_timeout", tags=frozenset({"slow"})),
    Case(
        "url:stall-headers", lambda u: {"url": u("/stall-headers")}, 504, "upstream_timeout", tags=frozenset({"slow"})
    ),
    Case(
        "url:slow-redirect-chain",
        lambda u: {"url": u("/slow-redirect/3")},
        504,
        "upstream_timeout",
        tags=frozenset({"slow"}),
    ),
    Case("url:reset-mid-body", lambda u: {"url": u("/reset-mid-body")}, 502, "upstream_error"),
    Case("url:short-body", lambda u: {"url": u("/short-body")}, 502, "upstream_error"),
    Case("url:redirect-endless-body", lambda u: {"url": u("/redirect-endless-body")}, 200, class_id=54),
    Case("url:ipv4-compatible-ipv6", lambda _u: {"url": "http://[::127.0.0.1]/"}, 400, "forbidden_url"),
    Case("url:siit-ipv6", lambda _u: {"url": "http://[::ffff:0:7f00:1]/"}, 400, "forbidden_url"),
    Case("url:site-local-ipv6", lambda _u: {"url": "http://[fec0::1]/"}, 400, "forbidden_url"),
    Case("url:6to4-private", lambda _u: {"url": "http://[2002:a9fe:a9fe::1]/"}, 400, "forbidden_url"),
    Case("url:teredo", lambda _u: {"url": "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"}, 400, "forbidden_url"),
    Case("url:nat64-metadata", lambda _u: {"url": "http://[64:ff9b::a9fe:a9fe]/"}, 400, "forbidden_url"),
    Case("url:huge-declared", lambda u: {"url": u("/huge-declared")}, 413, "payload_too_large"),
    Case("url:endless", lambda u: {"url": u("/endless")}, 413, "payload_too_large"),
]

#: Settings every serving path under test runs with: loopback URLs allowed
#: (the hostile upstream lives there) and short fetch limits so the slow
#: cases finish quickly.
STACK_ENV = {
    "FLOWERS_ALLOW_LOOPBACK_URLS": "1",
    "FLOWERS_FETCH_CONNECT_TIMEOUT": "1",
    "FLOWERS_FETCH_READ_TIMEOUT": "2",
    "FLOWERS_FETCH_TOTAL_TIMEOUT": "4",
    "FLOWERS_MAX_IMAGE_BYTES": str(4 * 1024 * 1024),
    # Batches: no time budget below the runtime's own timeout (a loaded machine must not turn items into 504s).
    "FLOWERS_BATCH_TIME_BUDGET": "600",
}
