"""The web page's files through the handler: routes, headers, caching, and paths that must lead nowhere."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowers_serving import web
from flowers_serving.handler import lambda_handler


def get(path: str, *, headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    """A REST API (v1) proxy event for GET ``path``, as the local gateway builds it."""
    event = {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {"requestId": "apigw", "stage": "prod", "path": f"/prod{path}"},
        "body": None,
        "isBase64Encoded": False,
    }
    reply: dict[str, Any] = lambda_handler(event, None)
    return reply


def body_of(reply: dict[str, Any]) -> bytes:
    return base64.b64decode(reply["body"]) if reply["isBase64Encoded"] else reply["body"].encode()


def test_the_page_at_the_root() -> None:
    reply = get("/")
    assert reply["statusCode"] == 200
    headers = reply["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == web.CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in web.CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{20}"', headers["ETag"])
    page = body_of(reply).decode()
    assert '<script type="module" src="web/app.js?v=' in page
    assert "http://" not in page.replace('placeholder="https://example.com/rose.jpg"', "")  # nothing external


def test_every_linked_asset_is_served_with_its_type_and_a_long_cache() -> None:
    page = body_of(get("/")).decode()
    links = set(re.findall(r'(?:href|src|data-sample)="web/([^"?]+)\?v=([0-9a-f]+)"', page))
    assert {name for name, _ in links} == {p.removeprefix("/web/") for p in web.paths() if p != "/"}
    assert not re.findall(r'"web/[^"?]+"', page)  # no link without its version
    types = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml", "jpg": "image/jpeg"}
    for name, version in links:
        reply = get(f"/web/{name}", query={"v": version})
        assert reply["statusCode"] == 200, name
        assert reply["headers"]["Content-Type"].startswith(types[name.rsplit(".", 1)[1]])
        assert reply["headers"]["Cache-Control"] == "public, max-age=31536000, immutable"
        assert reply["headers"]["ETag"] == f'"{version}"'
        # An old or missing version is not cached for long: it may be a new file by now.
        assert get(f"/web/{name}", query={"v": "old"})["headers"]["Cache-Control"] == "public, max-age=300"


def test_sample_photos_are_jpeg_bytes() -> None:
    samples = sorted(p for p in web.paths() if p.startswith("/web/samples/"))
    assert len(samples) == 4
    for path in samples:
        reply = get(path)
        assert reply["statusCode"] == 200
        assert reply["headers"]["Content-Type"] == "image/jpeg"
        assert reply["isBase64Encoded"] is True
        assert body_of(reply)[:3] == b"\xff\xd8\xff"


def test_if_none_match_gets_304() -> None:
    etag = get("/web/app.js")["headers"]["ETag"]
    reply = get("/web/app.js", headers={"If-None-Match": f'"other", {etag}'})
    assert reply["statusCode"] == 304
    assert reply["body"] == ""
    assert reply["headers"]["ETag"] == etag
    assert get("/web/app.js", headers={"if-none-match": '"other"'})["statusCode"] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/web/",
        "/web/nothing.js",
        "/web/../handler.py",
        "/web/..%2fhandler.py",
        "/web/static/app.js",
        "/web/__init__.py",
    ],
)
def test_unknown_web_paths_are_404_and_never_read_from_disk(path: str) -> None:
    reply = get(path)
    assert reply["statusCode"] == 404
    assert reply["headers"]["Content-Type"] == "application/json"
    assert json.loads(reply["body"])["error"]["code"] == "bad_request"


def test_stage_root_without_its_slash_is_redirected() -> None:
    # https://<api>.execute-api.../prod: the relative links need .../prod/
    event = {"resource": "/", "path": "/", "httpMethod": "GET", "requestContext": {"stage": "prod", "path": "/prod"}}
    reply = lambda_handler(event, None)
    assert reply["statusCode"] == 308
    assert reply["headers"]["Location"] == "/prod/"


def test_rest_api_greedy_resource_and_http_api_v2() -> None:
    rest = {
        "resource": "/web/{asset+}",
        "path": "/flowers/web/app.css",  # behind a custom domain's base path
        "pathParameters": {"asset": "app.css"},
        "httpMethod": "GET",
        "requestContext": {"stage": "prod", "path": "/flowers/web/app.css"},
    }
    assert lambda_handler(rest, None)["headers"]["Content-Type"].startswith("text/css")
    v2 = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET", "path": "/"}}}
    assert lambda_handler(v2, None)["headers"]["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "event",
    [
        {"url": "https://example.com/rose.jpg"},  # a direct invoke
        {"httpMethod": "POST", "path": "/", "requestContext": {}, "body": "{}"},
        {"httpMethod": "GET", "path": "/health", "requestContext": {}},
        "not even a dict",
    ],
)
def test_everything_else_is_left_to_the_handler(event: Any) -> None:
    assert web.respond(event) is None


def test_the_local_gateway_routes_every_file() -> None:
    from flowers_serving.local.gateway import ROUTES

    assert {("GET", p) for p in web.paths()} <= set(ROUTES)
    assert ("GET", "/") in ROUTES


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@given(
    path=st.sampled_from(["/", "/web/app.js", "/web/x"]) | st.text(max_size=30),
    noise=st.dictionaries(
        st.sampled_from(["headers", "queryStringParameters", "pathParameters", "resource", "version", "rawPath"]),
        _json,
    ),
)
def test_odd_get_events_never_raise(path: str, noise: dict[str, Any]) -> None:
    event = {"httpMethod": "GET", "path": path, "requestContext": {"path": path}, **noise}
    reply = web.respond(event)
    assert reply is None or reply["statusCode"] in (200, 304, 308, 404)
