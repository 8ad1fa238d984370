"""What the server refuses, checked over its whole route table, so a route added later is
covered without editing this file: the API key on every route that reads or writes
data, traversal on every media route, and schemathesis over every operation of
/openapi.json with no 5xx. Plus uploads indexed while searches keep answering."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.routing import Mount

from mmrag.index.batch import Batch, SourceInfo
from mmrag.server import ServerSettings
from mmrag.types import Document, Modality
from tests.corpus_store import corpus_store
from tests.server.conftest import ANSWER_CONFIG, Live, live_server, write_config
from tests.server.schema_fuzz import fuzz_operations, without_lifespan

KEY = "guard-key"
# The only routes anyone may call without the key: none of them reads the store.
PUBLIC = {
    "/health",  # liveness
    "/",  # the web page (static HTML; it asks for the key)
    "/static",  # its scripts and styles
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}


@pytest.fixture(scope="module")
def guarded(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("guarded")
    settings = ServerSettings(
        store=corpus_store(cache_dir, root / "store"),
        config=write_config(root, ANSWER_CONFIG),
        api_key=KEY,
        max_upload_bytes=1024 * 1024,
        timeout=90,
    )
    with live_server(settings) as live:
        yield live


def all_routes(app) -> list:
    """The app's routes, with included routers opened up (FastAPI >= 0.16x keeps an
    included router as one entry whose routes carry the router's prefix and dependencies)."""
    out = []
    for route in app.routes:
        included = getattr(route, "effective_route_contexts", None)
        out.extend(included() if included is not None else [route])
    return out


def api_routes(app) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every route of the app."""
    out = []
    for route in all_routes(app):
        if isinstance(route, Mount):
            out.append(("GET", route.path + "/x"))
        else:
            path = route.path_format.replace("{doc_id}", "x")
            out.extend((method, path) for method in sorted(route.methods - {"HEAD"}))
    return out


def _public(path: str) -> bool:
    return path in PUBLIC or path.startswith("/static/")


def test_every_data_route_needs_the_key(guarded: Live) -> None:
    routes = api_routes(guarded.app)
    guarded_routes = [(m, p) for m, p in routes if not _public(p)]
    assert len(guarded_routes) >= 10, routes  # the table was read, not empty
    anon = guarded.anonymous()
    for method, path in guarded_routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = anon.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.status_code)
        # ...and the key opens it (whatever the request then lacks)
        r = guarded.client.request(method, path, json={}, params={"source_id": "x", "q": "x"})
        assert r.status_code != 401, (method, path)
    for method, path in routes:
        if _public(path) and path != "/static/x":
            assert anon.request(method, path).status_code == 200, path


def media_routes(app) -> list[str]:
    """Every route that serves a document's media: those taking a {doc_id:path}."""
    return [
        r.path_format
        for r in all_routes(app)
        if not isinstance(r, Mount) and "{doc_id}" in r.path_format and "GET" in r.methods
    ]


def _raw_get(live: Live, path: str) -> tuple[int, bytes]:
    """A GET sent as written: no client-side normalisation of dots or escapes."""
    host, port = live.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", path, headers={"Authorization": f"Bearer {KEY}"})
    response = conn.getresponse()
    status, body = response.status, response.read()
    conn.close()
    return status, body


SECRET = b"\x89PNG\r\n\x1a\n secret bytes outside the store"


def test_no_media_route_reads_outside_the_store(guarded: Live, tmp_path: Path) -> None:
    routes = media_routes(guarded.app)
    assert {"/api/media/{doc_id}", "/api/thumbnail/{doc_id}"} <= set(routes)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(SECRET)
    root = guarded.state.root
    guarded.state.uploads.mkdir(exist_ok=True)
    file_link = guarded.state.uploads / "link-to-secret.png"
    file_link.symlink_to(secret)
    dir_link = guarded.state.uploads / "link-to-outside"
    dir_link.symlink_to(outside, target_is_directory=True)
    depth = "../" * (len(root.parts) + 2)
    refs = {
        "absolute": str(secret),
        "dotdot": depth + str(secret).lstrip("/"),
        "encoded": "%2e%2e/" * (len(root.parts) + 2) + str(secret).lstrip("/"),
        "file-symlink": str(file_link.relative_to(root)),
        "dir-symlink": str((dir_link / "secret.png").relative_to(root)),
        "nul": "uploads/x.png\x00../../secret.png",
        "inside": "uploads/fine/photo.png",  # the control: a file in the store is served
    }
    from PIL import Image

    (guarded.state.uploads / "fine").mkdir(exist_ok=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(guarded.state.uploads / "fine" / "photo.png")
    docs = [
        Document(id=f"trap-{k}", text="x", modality=Modality.IMAGE, source_id="trap", media=v)
        for k, v in refs.items()
    ]
    with guarded.state.write_lock:
        guarded.state.store.write(Batch([SourceInfo("trap", "0")], docs, [["x"] for _ in docs]))
    ids = [f"trap-{k}" for k in refs if k != "inside"] + [
        depth + str(secret).lstrip("/"),
        quote(depth + str(secret).lstrip("/"), safe=""),
        "%2e%2e/" * 12 + "etc/passwd",
        quote(str(secret), safe=""),
        str(secret),
    ]
    try:
        for route in routes:
            status, _ = _raw_get(guarded, route.replace("{doc_id}", "trap-inside"))
            assert status == 200, route
            for doc_id in ids:
                path = route.replace("{doc_id}", doc_id if "%" in doc_id else quote(doc_id))
                status, body = _raw_get(guarded, path)
                assert status in (400, 404), (route, doc_id, status)
                assert b"secret bytes" not in body
    finally:
        with guarded.state.write_lock:
            guarded.state.store.delete_sources(["trap"])
        file_link.unlink()
        dir_link.unlink()


def test_schemathesis_finds_no_server_error(guarded: Live) -> None:
    """Every operation of /openapi.json, positive and negative cases, through the live
    server's own app in process; ask and chat run the real model, so they get few."""
    reports = fuzz_operations(
        without_lifespan(guarded.app),
        {"Authorization": f"Bearer {KEY}"},
        examples=40,
        slow_examples=3,
    )
    assert len(reports) >= 12, [r.operation for r in reports]
    failures = {r.operation: r.failures for r in reports if r.failures}
    assert not failures, failures
    # operations without parameters are called once; the others 40 times
    assert sum(r.calls for r in reports) >= 250


@pytest.mark.parametrize("name", [":", ".x:Y", "os:system", "mmrag.retrieve.sparse:BM25Retriever"])
def test_a_request_cannot_name_a_retriever_by_import_path(guarded: Live, name: str) -> None:
    """Found by schemathesis: retriever ":" raised ValueError out of importlib (a 500). A
    request could also make the server import any module by naming it; now only
    registered names are accepted from a request."""
    r = guarded.client.post("/api/search", json={"query": "tides", "retriever": name})
    assert r.status_code == 400 and "unknown retriever" in r.json()["detail"], r.text
    r = guarded.client.get("/api/search", params={"q": "tides", "retriever": name})
    assert r.status_code == 400


def test_an_empty_module_name_is_a_config_error() -> None:
    from mmrag.errors import ConfigError
    from mmrag.registry import import_object

    for path in (":x", ".x:Y"):  # ValueError, TypeError out of importlib before
        with pytest.raises(ConfigError, match="cannot import"):
            import_object(path)
