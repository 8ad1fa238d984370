"""One store's connection to Milvus: every server call retried while the server is unreachable.

A call that still fails, or fails for another reason, is reported as a `StoreError`
naming the server and what was being done. The connection also tracks which of its
collections need Strong reads to see its own deletes (see CONSISTENCY).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from mmrag.errors import StoreError

T = TypeVar("T")
# Session: a client reads its own writes without Strong's wait for the next time tick
# (about 200 ms per search on Milvus 2.3, measured in bench/scale.py); other clients
# see the data once it is flushed, which `checkpoint` does at the end of an index run.
# Milvus 2.3 returns no timestamp for a delete, so pymilvus's session clock does not
# advance and a Session read right after a delete still sees the deleted rows: reads
# of a collection with deletes not yet followed by an upsert are made Strong instead.
CONSISTENCY = "Session"
# pymilvus pings an idle connection every 10 s; gRPC servers left at the library's
# defaults, as Milvus Lite's is, allow one ping per 5 minutes without calls and drop the
# connection ("too many pings") after two more. A dedicated connection (closed with the
# store, not shared per URI) that pings less often keeps working with every server; a
# dead connection is still noticed by the call timeout, and the call is retried.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 330_000}


class Connection:
    """A dedicated pymilvus `MilvusClient` for the collections named `collections`."""

    def __init__(
        self,
        uri: str,
        collections: Sequence[str],
        *,
        timeout: float,
        retries: int,
        retry_delay: float,
    ) -> None:
        from pymilvus import MilvusClient, MilvusException

        self.uri, self.collections = uri, tuple(collections)
        self.timeout, self.retries, self.retry_delay = timeout, retries, retry_delay
        try:
            self.client = MilvusClient(
                uri=uri, timeout=timeout, dedicated=True, grpc_options=GRPC_OPTIONS
            )
            self.server_version: str = self.client.get_server_version()
        except MilvusException as exc:
            raise StoreError(f"cannot reach Milvus at {uri}: {exc.message}") from exc
        self._unsynced_deletes: set[str] = set()  # collections to read with Strong

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one server call; retry while the server is unreachable, then raise StoreError."""
        from pymilvus import MilvusException

        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except MilvusException as exc:
                if _released(exc) and attempt < self.retries:
                    # A restarted Milvus Lite comes back with its collections released; it
                    # may still be opening them, so loading waits like any other retry.
                    with contextlib.suppress(MilvusException):
                        self.load()
                elif not _transient(exc) or attempt == self.retries:
                    raise StoreError(
                        f"Milvus at {self.uri}: {what} failed"
                        f"{f' after {attempt + 1} attempts' if attempt else ''}: {exc.message}"
                    ) from exc
            except Exception as exc:  # grpc errors surface unwrapped from some calls
                if type(exc).__module__.split(".")[0] != "grpc" or attempt == self.retries:
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def load(self) -> None:
        for name in self.collections:
            if self.client.has_collection(name):
                self.client.load_collection(name)

    def has(self, name: str) -> bool:
        return self.call("has_collection", lambda: self.client.has_collection(name))

    def consistency(self, collection: str) -> dict[str, Any]:
        """Read options that make this client's own deletes visible (see CONSISTENCY)."""
        return {"consistency_level": "Strong"} if collection in self._unsynced_deletes else {}

    def upsert(self, what: str, collection: str, rows: list[dict[str, Any]]) -> None:
        self.call(what, lambda: self.client.upsert(collection, rows))
        # the upsert's timestamp is later than the deletes: Session reads now cover them
        self._unsynced_deletes.discard(collection)

    def delete_ids(self, what: str, collection: str, ids: list[str]) -> None:
        self.call(what, lambda: self.client.delete(collection, ids=ids))
        self._unsynced_deletes.add(collection)

    def query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        level = self.consistency(collection)
        return self.call(
            f"query {collection}",
            lambda: list(self.client.query(collection, filter=expr, output_fields=fields, **level)),
        )

    def iterate(
        self, collection: str, fields: list[str], batch: int = 1000, expr: str = ""
    ) -> Iterator[dict]:
        """Every row of a collection (that `expr` matches), in pages: query_iterator keeps
        memory bounded, where one query would stop at the server's result window."""
        it = self.call(
            f"iterate {collection}",
            lambda: self.client.query_iterator(
                collection,
                batch_size=batch,
                filter=expr,
                output_fields=fields,
                **self.consistency(collection),
            ),
        )
        try:
            while page := self.call(f"iterate {collection}", it.next):
                yield from page
        finally:
            it.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None  # type: ignore[assignment]


def _transient(exc: Exception) -> bool:
    """Whether a failed call may succeed if repeated (server restarting, network blip)."""
    text = str(getattr(exc, "message", exc)).lower()
    return any(
        word in text for word in ("unavailable", "connect", "deadline", "timeout", "not ready")
    )


def _released(exc: Exception) -> bool:
    text = str(getattr(exc, "message", exc)).lower()
    return "released" in text or "not loaded" in text or "call load" in text


class _QuietRpcErrors(logging.Filter):
    """Drop pymilvus's per-call error logs and the tracebacks of its reconnect warnings:
    every failure reaches the caller as a StoreError carrying the same message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        return not record.getMessage().startswith("RPC error")


for _name in ("pymilvus.decorators", "pymilvus.client.connection_manager"):
    logging.getLogger(_name).addFilter(_QuietRpcErrors())
