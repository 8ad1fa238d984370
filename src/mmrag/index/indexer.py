"""Turn files and records into stored, searchable documents, batch by batch.

Each batch is one store transaction, so an interrupted run keeps every batch that
committed, and a re-run skips sources whose content hash is unchanged.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmrag.errors import IngestError
from mmrag.index.base import Store
from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.embedders import FieldEmbedder, TextFieldEmbedder
from mmrag.ingest.chunking import chunk_documents
from mmrag.ingest.files import SourceFile, iter_files, load
from mmrag.models.text import TextEncoder
from mmrag.progress import progress
from mmrag.types import Document


@dataclass(slots=True)
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    seconds: float = 0.0
    errors: list[IngestError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} deleted, {self.chunks} chunks, {len(self.errors)} failed "
            f"in {self.seconds:.1f} s"
        )


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Indexer:
    """Chunks, analyses and embeds sources into an `EmbeddedStore`.

    `encoder` is a shorthand for one text-space field; `embedders` lists every vector
    field explicitly (text, image, ...).
    """

    def __init__(
        self,
        store: Store,
        encoder: TextEncoder | None = None,
        *,
        embedders: Sequence[FieldEmbedder] = (),
        chunk_tokens: int = 256,
        overlap: int = 32,
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        self.store = store
        self.embedders = list(embedders)
        if encoder is not None:
            self.embedders.insert(0, TextFieldEmbedder(encoder))
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.batch_size = batch_size
        self.show_progress = progress
        for e in self.embedders:
            store.ensure_field(e.field, e.dim, e.info())

    # ---- files -------------------------------------------------------------------

    def index_paths(self, paths: Sequence[str | Path], prune: bool = False) -> IndexReport:
        """Index files and folders; unchanged sources are skipped, changed ones replaced.

        Records that disappeared from a multi-record file (JSONL, BEIR) are deleted;
        with `prune`, so are stored files under `paths` that no longer exist.
        """
        started = time.perf_counter()
        report = IndexReport()
        roots = [Path(p).expanduser().resolve() for p in paths]
        for root in roots:
            if not root.exists():
                report.errors.append(IngestError(str(root), "no such file or directory"))
        files = list(iter_files([r for r in roots if r.exists()]))
        known = self.store.source_hashes()
        by_path: dict[str, set[str]] = {}
        for s in self.store.sources():
            by_path.setdefault(s["path"], set()).add(s["source_id"])
        pending: list[tuple[SourceInfo, list[Document]]] = []
        vanished: list[str] = []
        with progress(self.show_progress) as bar:
            task = bar.add_task("indexing files", total=len(files))
            for path in files:
                bar.update(task, description=f"indexing {path.name[:40]}")
                try:
                    # one-document files: the file hash is the source hash, so skip unparsed
                    if known.get(str(path)) == file_hash(path):
                        report.unchanged += 1
                        continue
                    loaded = load(path)
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
                finally:
                    bar.advance(task)
                report.errors.extend(loaded.skipped)
                report.unchanged += len(loaded.sources) - len(chunked)
                present = {src.source_id for src in loaded.sources}
                vanished.extend(by_path.get(str(path), set()) - present)
                for src, docs in chunked:
                    if src.source_id in known:
                        report.updated += 1
                    else:
                        report.added += 1
                    pending.append((self._source_info(src), docs))
                if sum(len(d) for _, d in pending) >= self.batch_size:
                    report.chunks += self._flush(pending)
                    pending = []
            report.chunks += self._flush(pending)
        if vanished:
            self.store.delete_sources(vanished)
            report.deleted += len(vanished)
        if prune:
            report.deleted += self.prune(roots)
        self.store.checkpoint()
        report.seconds = time.perf_counter() - started
        return report

    def prune(self, roots: Sequence[Path]) -> int:
        """Delete stored sources under `roots` whose file is gone."""
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
        known = self.store.source_hashes()
        pending: list[tuple[SourceInfo, list[Document]]] = []
        with progress(self.show_progress) as bar:
            task = bar.add_task("indexing records", total=total)
            for info, docs in records:
                bar.advance(task)
                previous = known.get(info.source_id)
                if previous == info.content_hash:
                    report.unchanged += 1
                    continue
                if previous is None:
                    report.added += 1
                else:
                    report.updated += 1
                pending.append((info, docs))
                if sum(len(d) for _, d in pending) >= self.batch_size:
                    report.chunks += self._flush(pending)
                    pending = []
            report.chunks += self._flush(pending)
        self.store.checkpoint()
        report.seconds = time.perf_counter() - started
        return report

    def _flush(self, pending: list[tuple[SourceInfo, list[Document]]]) -> int:
        if not pending:
            return 0
        docs = [d for _, ds in pending for d in ds]
        batch = Batch(
            sources=[info for info, _ in pending],
            docs=docs,
        )
        for e in self.embedders:
            positions = np.array([i for i, d in enumerate(docs) if e.accepts(d)], dtype=np.int64)
            if len(positions):
                vectors = e.embed([docs[i] for i in positions])
                batch.vectors[e.field] = FieldVectors(positions, vectors)
        self.store.write(batch)
        return len(docs)
