"""Servers for the scale-out tests: Milvus Lite, Milvus 2.3.5 and a local Ray, each started
once per session on loopback and stopped at the end; skipped only when not installed."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mmrag.index.base import Store
from mmrag.index.store import EmbeddedStore
from tests.scale.servers import LiteServer, Milvus23Server

_names = itertools.count()


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed (pip install 'mmrag[scale]')")


@pytest.fixture(scope="session")
def lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteServer]:
    _needs("pymilvus")
    _needs("milvus_lite")
    server = LiteServer(tmp_path_factory.mktemp("milvus-lite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def milvus23_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Milvus23Server]:
    _needs("pymilvus")
    _needs("milvus")
    server = Milvus23Server(tmp_path_factory.mktemp("milvus-23")).start()
    yield server
    server.stop()


def collection_name(prefix: str = "t") -> str:
    return f"{prefix}{next(_names)}"


StoreFactory = Callable[..., Store]


@pytest.fixture(params=["embedded", "lite", "milvus23"])
def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A function that opens a fresh store on one backend (same arguments for all)."""
    opened: list[Store] = []
    kind = request.param
    if kind != "embedded":
        server = request.getfixturevalue(f"{kind}_server")

    def factory(**kwargs) -> Store:
        if kind == "embedded":
            store: Store = EmbeddedStore(tmp_path / f"s{len(opened)}", **kwargs)
        else:
            from mmrag.index.milvus import MilvusStore

            store = MilvusStore(
                server.uri, collection_name(), blob_dir=tmp_path / "blobs", **kwargs
            )
        opened.append(store)
        return store

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        store.close()
