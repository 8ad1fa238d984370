"""Turn files and records into stored, searchable documents, batch by batch: the one
place where ingest/ (loaders, chunking) meets index/ (embedders, the store).

Each batch is one store transaction, so an interrupted run keeps every batch that
committed, and a re-run skips sources whose content hash is unchanged.

Sources are prepared (read, parsed, chunked, analysed) in a background thread a bounded
number of bytes ahead, while the main thread embeds and writes the previous ones
(`prefetch.Prefetch`). A batch closes once its text and vectors reach `commit_bytes`,
so a batch of long PDF pages and one of short records cost about the same memory and
the same time to redo after a crash. The whole batch goes to each embedder in one call,
which sorts it by length, so padding is shared by texts of similar size.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import IngestError
from mmrag.index.analyzer import Analyzer
from mmrag.index.base import Store
from mmrag.index.batch import Batch, FieldVectors, PreparedSource, SourceInfo, text_bytes
from mmrag.index.embedders import FieldEmbedder, TextFieldEmbedder
from mmrag.index.prefetch import Prefetch
from mmrag.ingest.chunking import chunk_documents
from mmrag.ingest.files import LOADERS, LoaderTable, SourceFile, iter_files, load
from mmrag.models.text import TextEncoder
from mmrag.progress import IndexingBar, indexing_progress
from mmrag.types import Document

# About 20 to 60 s of encoding on two cores for short texts; a crash loses at most this.
COMMIT_BYTES = 2 << 20
PREFETCH_BYTES = 8 << 20
PHASES = ("prepare", "wait", "embed", "write", "checkpoint")


@dataclass(slots=True)
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    seconds: float = 0.0
    errors: list[IngestError] = field(default_factory=list)
    # wall seconds per phase: prepare (in its thread: read, parse, chunk, analyse), wait
    # (the writer idle, waiting for prepared sources), embed, write, checkpoint
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    batches: int = 0

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} deleted, {self.chunks} chunks, {len(self.errors)} failed "
            f"in {self.seconds:.1f} s"
        )

    def timing(self) -> str:
        """Where the time went, one phase per field (prepare overlaps the others)."""
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items())


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Indexer:
    """Chunks, analyses and embeds sources into a `Store`.

    `encoder` is a shorthand for one text-space field; `embedders` lists every vector
    field explicitly (text, image, ...). `loaders` is the indexer's own table of file
    loaders by suffix (default: a copy of `ingest.files.LOADERS`, taken now); build one
    for a config with `indexing.build.loader_table`. A batch is committed once its text
    and vectors reach `commit_bytes` (or `batch_size` chunks, when set).
    `prefetch_bytes` bounds how far ahead sources are prepared in a thread; 0 prepares
    them in the calling thread. `encode_workers` threads share each batch for embedders
    that run concurrently (ONNX encoders with one ORT thread each). `store_lock`, when
    given, is held around each use of the store only, so searches on a shared store go
    on between commits.
    """

    def __init__(
        self,
        store: Store,
        encoder: TextEncoder | None = None,
        *,
        embedders: Sequence[FieldEmbedder] = (),
        loaders: LoaderTable | None = None,
        chunk_tokens: int = 256,
        overlap: int = 32,
        batch_size: int | None = None,
        commit_bytes: int = COMMIT_BYTES,
        prefetch_bytes: int = PREFETCH_BYTES,
        encode_workers: int = 1,
        store_lock: AbstractContextManager[Any] | None = None,
        progress: bool = True,
    ) -> None:
        if commit_bytes < 1 or encode_workers < 1:
            raise ValueError("commit_bytes and encode_workers must be positive")
        if prefetch_bytes < 0:
            raise ValueError(f"prefetch_bytes must be >= 0 (0: no thread), got {prefetch_bytes}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.store = store
        self.embedders = list(embedders)
        self.loaders: LoaderTable = dict(LOADERS if loaders is None else loaders)
        if encoder is not None:
            self.embedders.insert(0, TextFieldEmbedder(encoder))
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.batch_size = batch_size
        self.commit_bytes = commit_bytes
        self.prefetch_bytes = prefetch_bytes
        self.encode_workers = encode_workers
        self.show_progress = progress
        self._lock: AbstractContextManager[Any] = store_lock or nullcontext()
        self._vector_bytes = sum(4 * e.dim for e in self.embedders)
        self._warmed: set[FieldEmbedder] = set()  # embedders run once before going concurrent
        with self._lock:
            for e in self.embedders:
                store.ensure_field(e.field, e.dim, e.info(), space=e.space)
            stored = store.analyzer
        # A copy for the preparing thread: PyStemmer objects are not thread-safe, and the
        # store's own analyser serves searches meanwhile.
        self._analyzer = Analyzer.from_dict(stored.to_dict())

    # ---- files -------------------------------------------------------------------

    def index_paths(self, paths: Sequence[str | Path], prune: bool = False) -> IndexReport:
        """Index files and folders; unchanged sources are skipped, changed ones replaced.

        Records that disappeared from a multi-record file (JSONL, BEIR) are deleted;
        with `prune`, so are stored files under `paths` that no longer exist.
        """
        started = time.perf_counter()
        report = IndexReport()
        roots = []
        for p in paths:
            try:
                root = Path(p).expanduser().resolve()
            except RuntimeError:  # a symlink loop (Python < 3.13 raises this, not OSError)
                report.errors.append(IngestError(str(p), "a symlink loop"))
                continue
            roots.append(root)
            if not root.exists():
                report.errors.append(IngestError(str(root), "no such file or directory"))
        files = list(iter_files([r for r in roots if r.exists()], loaders=self.loaders))
        with self._lock:
            known = self.store.source_hashes()
            by_path: dict[str, set[str]] = {}
            for s in self.store.sources():
                by_path.setdefault(s["path"], set()).add(s["source_id"])
        vanished: list[str] = []
        with indexing_progress(self.show_progress, len(files), "files") as bar:
            prepared = self._prepare_files(files, known, by_path, vanished, report, bar)
            self._commit_all(prepared, report, bar)
        with self._lock:
            if vanished:
                self.store.delete_sources(vanished)
                report.deleted += len(vanished)
            if prune:
                report.deleted += self.prune(roots)
        self._checkpoint(report)
        report.seconds = time.perf_counter() - started
        return report

    def _prepare_files(
        self,
        files: list[Path],
        known: dict[str, str],
        by_path: dict[str, set[str]],
        vanished: list[str],
        report: IndexReport,
        bar: IndexingBar,
    ) -> Iterator[PreparedSource]:
        """Changed sources of each file, chunked and analysed; runs in the preparing thread,
        which alone touches `report`'s source counts and errors until it has finished."""
        for path in files:
            t0 = time.perf_counter()
            bar.source(path.name)
            try:
                # one-document files: the file hash is the source hash, so skip unparsed
                if known.get(str(path)) == file_hash(path):
                    report.unchanged += 1
                    continue
                loaded = load(path, self.loaders)
                chunked = [
                    (src, chunk_documents(src, self.chunk_tokens, self.overlap))
                    for src in loaded.sources
                    if known.get(src.source_id) != src.content_hash
                ]
            except IngestError as exc:
                report.errors.append(exc)
                continue
            except OSError as exc:
                report.errors.append(IngestError(str(path), exc.strerror or str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - a parser bug on one file must not end the run
                reason = f"unexpected {type(exc).__name__}: {exc}"
                report.errors.append(IngestError(str(path), reason))
                continue
            finally:
                report.phases["prepare"] += time.perf_counter() - t0
                bar.sources_done()
            report.errors.extend(loaded.skipped)
            report.unchanged += len(loaded.sources) - len(chunked)
            present = {src.source_id for src in loaded.sources}
            vanished.extend(by_path.get(str(path), set()) - present)
            for src, docs in chunked:
                if src.source_id in known:
                    report.updated += 1
                else:
                    report.added += 1
                t0 = time.perf_counter()
                item = self._prepared(self._source_info(src), docs)
                report.phases["prepare"] += time.perf_counter() - t0
                yield item

    def prune(self, roots: Sequence[Path]) -> int:
        """Delete stored sources under `roots` whose file is gone."""
        with self._lock:
            gone = [
                s["source_id"]
                for s in self.store.sources()
                if s["path"]
                and any(Path(s["path"]).is_relative_to(r) for r in roots)
                and not Path(s["path"]).exists()
            ]
            if gone:
                self.store.delete_sources(gone)
        return len(gone)

    @staticmethod
    def _source_info(source: SourceFile) -> SourceInfo:
        return SourceInfo(
            source_id=source.source_id,
            content_hash=source.content_hash,
            path=str(source.path) if source.path else None,
            title=source.title,
            metadata=source.metadata,
        )

    # ---- records (datasets, API callers) -----------------------------------------

    def index_records(
        self, records: Iterable[tuple[SourceInfo, list[Document]]], total: int | None = None
    ) -> IndexReport:
        """Index pre-built documents grouped by source; unchanged sources are skipped."""
        started = time.perf_counter()
        report = IndexReport()
        with self._lock:
            known = self.store.source_hashes()
        with indexing_progress(self.show_progress, total, "records") as bar:
            prepared = self._prepare_records(records, known, report, bar)
            self._commit_all(prepared, report, bar)
        self._checkpoint(report)
        report.seconds = time.perf_counter() - started
        return report

    def _prepare_records(
        self,
        records: Iterable[tuple[SourceInfo, list[Document]]],
        known: dict[str, str],
        report: IndexReport,
        bar: IndexingBar,
    ) -> Iterator[PreparedSource]:
        for info, docs in records:
            bar.sources_done()
            previous = known.get(info.source_id)
            if previous == info.content_hash:
                report.unchanged += 1
                continue
            if previous is None:
                report.added += 1
            else:
                report.updated += 1
            t0 = time.perf_counter()
            item = self._prepared(info, docs)
            report.phases["prepare"] += time.perf_counter() - t0
            yield item

    # ---- shared: analyse, batch, embed, write --------------------------------------

    def _prepared(self, info: SourceInfo, docs: list[Document]) -> PreparedSource:
        tokens = [self._analyzer.tokens(d.text) for d in docs]
        return PreparedSource(info, docs, tokens, text_bytes(docs))

    def _ahead(self, items: Iterator[PreparedSource]) -> AbstractContextManager[Any]:
        if self.prefetch_bytes == 0:
            return nullcontext(items)
        return Prefetch(items, lambda p: p.nbytes, self.prefetch_bytes)

    def _commit_all(
        self, items: Iterator[PreparedSource], report: IndexReport, bar: IndexingBar
    ) -> None:
        """Group prepared sources into byte-sized batches and write each as it fills."""
        workers = (
            ThreadPoolExecutor(self.encode_workers, thread_name_prefix="mmrag-embed")
            if self.encode_workers > 1 and any(e.concurrent for e in self.embedders)
            else None
        )
        pending: list[PreparedSource] = []
        size = chunks = 0
        try:
            with self._ahead(items) as stream:
                while True:
                    t0 = time.perf_counter()
                    item = next(stream, None)
                    report.phases["wait"] += time.perf_counter() - t0
                    if item is None:
                        break
                    pending.append(item)
                    size += item.nbytes + len(item.docs) * self._vector_bytes
                    chunks += len(item.docs)
                    if size >= self.commit_bytes or (
                        self.batch_size is not None and chunks >= self.batch_size
                    ):
                        self._write(pending, report, bar, workers)
                        pending, size, chunks = [], 0, 0
            self._write(pending, report, bar, workers)
        finally:
            if workers is not None:
                workers.shutdown()

    def _write(
        self,
        pending: list[PreparedSource],
        report: IndexReport,
        bar: IndexingBar,
        workers: ThreadPoolExecutor | None,
    ) -> None:
        if not pending:
            return
        docs = [d for p in pending for d in p.docs]
        batch = Batch(sources=[p.info for p in pending], docs=docs)
        batch.tokens = [t for p in pending for t in p.tokens]
        t0 = time.perf_counter()
        for e in self.embedders:
            positions = np.array([i for i, d in enumerate(docs) if e.accepts(d)], dtype=np.int64)
            if len(positions):
                vectors = _embed(
                    e, [docs[i] for i in positions], workers, self.encode_workers, self._warmed
                )
                batch.vectors[e.field] = FieldVectors(positions, vectors)
        t1 = time.perf_counter()
        with self._lock:
            self.store.write(batch)
        report.phases["embed"] += t1 - t0
        report.phases["write"] += time.perf_counter() - t1
        report.chunks += len(docs)
        report.batches += 1
        bar.chunks_written(len(docs))

    def _checkpoint(self, report: IndexReport) -> None:
        t0 = time.perf_counter()
        with self._lock:
            self.store.checkpoint()
        report.phases["checkpoint"] += time.perf_counter() - t0


def _embed(
    embedder: FieldEmbedder,
    docs: list[Document],
    workers: ThreadPoolExecutor | None,
    n: int,
    warmed: set[FieldEmbedder],
) -> np.ndarray:
    """One embed call, or one per worker on parts dealt out by length (so each part has a
    similar share of long and short texts), put back in the documents' order."""
    if workers is None or not embedder.concurrent or n < 2 or len(docs) < 2 * n:
        return np.asarray(embedder.embed(docs), dtype=np.float32)
    if embedder not in warmed:
        embedder.warm_up(docs[0])
        warmed.add(embedder)
    by_length = np.argsort([-len(d.text) for d in docs], kind="stable")
    parts = [by_length[i::n] for i in range(n)]
    results = workers.map(lambda part: embedder.embed([docs[i] for i in part]), parts)
    out = np.empty((len(docs), embedder.dim), dtype=np.float32)
    for part, vectors in zip(parts, results, strict=True):
        out[part] = vectors
    return out
