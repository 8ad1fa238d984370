"""What one server holds: the store, lazily built pipeline, retrievers and indexer, and locks.

The store serialises its own calls (index/store.py), so searches, the retrieval part of
an answer and an upload interleave call by call: an upload holds the store while it
writes a batch, never while it embeds one, and generation never holds it. Writers
(uploads, deletions) take turns under `write_lock`, so one upload's look at what is
stored, its writes and its clean-up are not mixed with another's; readers never take it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from mmrag.errors import ConfigError
from mmrag.index.media import collect_orphan_files, media_resolver
from mmrag.index.open import open_store
from mmrag.indexing import IndexConfig, Indexer, build_indexer, config_of
from mmrag.pipeline import Pipeline, default_retriever_name
from mmrag.retrieve import RETRIEVERS, Retriever
from mmrag.server.batching import SearchBatcher
from mmrag.server.settings import ServerSettings
from mmrag.threads import QUERY_BLAS_THREADS, set_blas_threads
from mmrag.types import Document

UPLOADS = "uploads"
THUMBNAILS = "thumbnails"


class ServerState:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        # Concurrency comes from the search workers, one core each (see mmrag.threads).
        set_blas_threads(QUERY_BLAS_THREADS)
        self.store = open_store(
            settings.store, create=not settings.read_only, read_only=settings.read_only
        )
        # uploads and thumbnails live where the store resolves media references
        self.root: Path = self.store.media_root.resolve()
        self.uploads = self.root / UPLOADS
        self.thumbnails = self.root / THUMBNAILS
        # Files a killed upload or deletion left without rows; no upload runs yet, and no
        # other process uploads into a store this one holds for writing.
        sweep = self.store.sole_writer and not settings.read_only
        self.orphans = collect_orphan_files(self.store, self.uploads) if sweep else []
        self.write_lock = threading.Lock()
        self.generation_slots = threading.BoundedSemaphore(max(1, settings.generation_slots))
        self.media: Callable[[Document], Path | None] = media_resolver(self.root)
        self._build_lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._retrievers: dict[str, Retriever] = {}
        self._by_request: dict[str | None, Retriever] = {}  # the name asked for -> built
        self._indexers: dict[bool, Indexer] = {}
        self._fields = dict(self.store.fields())
        self._count_lock = threading.Lock()
        self.active_generations = 0
        self.batcher = SearchBatcher(settings.search_workers or os.cpu_count() or 1)

    # ---- lazily built components -------------------------------------------------

    def pipeline(self) -> Pipeline:
        with self._build_lock:
            if self._pipeline is None:
                self._pipeline = Pipeline.from_toml(self.settings.config, self.store)
                self._by_request.pop(None, None)  # the config may name another default
            return self._pipeline

    def default_retriever(self) -> str:
        if self._pipeline is not None:
            return self._pipeline.names["retrieve"]
        return default_retriever_name(self.store)

    def built_retriever(self, name: str | None) -> Retriever | None:
        """The retriever a request named (None: the default) if it was built already.

        Takes no lock and reads no store, so the event loop may ask it per request.
        """
        return self._by_request.get(name)

    def retriever(self, name: str | None) -> Retriever:
        """The retriever a request names: a registered name only. (A config file may name
        a class by import path; a request must not make the server import a module.)"""
        if name is not None and name not in RETRIEVERS.names():
            known = ", ".join(RETRIEVERS.names())
            raise ConfigError(f"unknown retriever {name!r}; choose one of: {known}")
        with self._build_lock:
            key = name or self.default_retriever()
            if key not in self._retrievers:
                self._retrievers[key] = RETRIEVERS.create(key, store=self.store)
            self._by_request[name] = self._retrievers[key]
            return self._retrievers[key]

    def indexer(self, visual: bool = False) -> Indexer:
        """The indexer for uploads, built from the config the store was indexed with, as
        `mmrag index` would index the same files; `visual`: the upload holds images or
        video (so an 'auto' image encoder is chosen, as for `mmrag index` on them)."""
        visual = visual or "image" in self.store.fields()
        with self._build_lock:
            if visual not in self._indexers:
                self._indexers[visual] = self._make_indexer(visual)
            return self._indexers[visual]

    def index_config(self) -> IndexConfig:
        # One encoding thread: the server's cores serve its searches (see mmrag.threads).
        return config_of(self.store, dense=self.settings.dense).replace(workers=1)

    def _make_indexer(self, visual: bool) -> Indexer:
        return build_indexer(self.store, self.index_config(), visual=visual, progress=False)

    def store_changed(self) -> None:
        """After a write: components chosen by the store's fields are rebuilt if those changed."""
        fields = dict(self.store.fields())
        if fields != self._fields:
            with self._build_lock:
                self._fields = fields
                self._pipeline = None
                self._retrievers.clear()
                self._by_request.clear()

    # ---- bookkeeping -------------------------------------------------------------

    def generation_started(self) -> None:
        with self._count_lock:
            self.active_generations += 1

    def generation_ended(self) -> None:
        with self._count_lock:
            self.active_generations -= 1

    def close(self) -> None:
        self.batcher.close()
        self.store.close()
