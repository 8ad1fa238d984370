"""Distributed ingestion on Ray Data: `mmrag index ... --engine ray [--address ADDR]`.

    files --read_api--> load + chunk (tasks) --map_batches--> analyse + embed (actor pool:
    each actor loads the encoders once) --> the driver writes batches to the store

The same `IndexConfig` as the in-process indexer: read tasks get the config's loader
table (its loaders pickle as their settings and are built in the worker), and each
embedding actor rebuilds the config's field embedders from its `to_dict()`. Workers read
files, PDFs and thumbnails by path, so they share the driver's filesystem; a page
encoder, whose token matrices go to a table beside the store, is refused.

The store is written by the driver only, in batches of whole sources, so every backend
works (the embedded store allows one writer) and resumability is the in-process
indexer's: sources whose content hash the store already holds are skipped when read,
and a source is replaced whole, so a re-run after any failure adds no duplicates. Ray
Data restarts an embedding actor that dies and retries its calls, so a killed worker
costs time, not data.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, IngestError
from mmrag.index.analyzer import Analyzer
from mmrag.index.base import Store
from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.indexing.build import decide_auto, field_embedders, is_visual, loader_table
from mmrag.indexing.config import IndexConfig
from mmrag.indexing.indexer import Indexer, IndexReport, file_hash
from mmrag.ingest.files import LoaderTable, iter_files
from mmrag.registry import require
from mmrag.types import Document

# One source, ready to write: its info, documents, analysed tokens, and per field the
# positions (into the documents) and vectors.
Prepared = tuple[SourceInfo, list[Document], list[list[str]], dict[str, FieldVectors]]


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray with `workers` CPUs
    workers: int | None = None  # embedding actors (one encoder copy each); None: the config's
    sources_per_task: int = 32  # sources an embedding call receives at once
    readers: int = 1  # concurrent load-and-chunk tasks (each a Python worker process)


def check_ray_config(config: IndexConfig) -> None:
    """Refuse what the Ray engine cannot do, before any work starts."""
    if config.page_encoder:
        raise ConfigError(
            "--page-encoder needs --engine in-process: its token matrices go to a table "
            "beside the store, which Ray workers do not write"
        )


@dataclass
class _ReadStage:
    """Loads and chunks one file per row; skips what the store already holds."""

    known: dict[str, str]
    chunk_tokens: int
    overlap: int
    loaders: LoaderTable  # the config's table; its loaders are built in the worker

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        from mmrag.ingest.chunking import chunk_documents
        from mmrag.ingest.files import load

        path = Path(row["path"])
        try:
            loaded = load(path, self.loaders)
            chunked = [
                (src, chunk_documents(src, self.chunk_tokens, self.overlap))
                for src in loaded.sources
                if self.known.get(src.source_id) != src.content_hash
            ]
        except IngestError as exc:
            return [_row("error", path, payload=pickle.dumps(exc.reason))]
        except OSError as exc:
            return [_row("error", path, payload=pickle.dumps(exc.strerror or str(exc)))]
        present = [src.source_id for src in loaded.sources]
        out = [
            _row("present", path, payload=pickle.dumps(present)),
            _row("unchanged", path, n=len(loaded.sources) - len(chunked)),
        ]
        out += [_row("error", path, payload=pickle.dumps(e.reason)) for e in loaded.skipped]
        out += [
            _row("source", path, payload=pickle.dumps((Indexer._source_info(src), docs)))
            for src, docs in chunked
        ]
        return out


class _EmbedStage:
    """An actor: holds the encoders and the analyzer, embeds and analyses whole sources."""

    def __init__(self, config: dict[str, Any], analyzer: dict[str, Any] | None) -> None:
        # the config as plain values, with 'auto' decided by the driver
        self.embedders = field_embedders(IndexConfig.from_dict(config), None)
        self.analyzer = Analyzer.from_dict(analyzer) if analyzer else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kinds = batch["kind"]
        picked = [i for i, k in enumerate(kinds) if k == "source"]
        sources = [pickle.loads(batch["payload"][i]) for i in picked]
        docs = [d for _, ds in sources for d in ds]
        owner = np.repeat(np.arange(len(sources)), [len(ds) for _, ds in sources])
        starts = np.concatenate([[0], np.cumsum([len(ds) for _, ds in sources])])
        tokens = [self.analyzer.tokens(d.text) for d in docs] if self.analyzer else []
        per_source: list[dict[str, FieldVectors]] = [{} for _ in sources]
        for e in self.embedders:
            pos = np.array([i for i, d in enumerate(docs) if e.accepts(d)], dtype=np.int64)
            if not len(pos):
                continue
            vectors = np.asarray(e.embed([docs[i] for i in pos]), dtype=np.float32)
            for s in np.unique(owner[pos]):
                mine = owner[pos] == s
                per_source[s][e.field] = FieldVectors(pos[mine] - starts[s], vectors[mine])
        payload = list(batch["payload"])
        for j, i in enumerate(picked):
            info, source_docs = sources[j]
            lo, hi = starts[j], starts[j + 1]
            prepared: Prepared = (info, source_docs, tokens[lo:hi], per_source[j])
            payload[i] = pickle.dumps(prepared)
        return {**batch, "payload": np.array(payload, dtype=object)}


def _row(kind: str, path: Path, payload: bytes = b"", n: int = 0) -> dict[str, Any]:
    return {"kind": kind, "path": str(path), "payload": payload, "n": n}


@dataclass
class _Writer:
    """Collects prepared sources on the driver and writes them in batches."""

    store: Store
    batch_size: int
    report: IndexReport
    known: dict[str, str]
    pending: list[Prepared] = field(default_factory=list)

    def add(self, prepared: Prepared) -> None:
        info = prepared[0]
        if info.source_id in self.known:
            self.report.updated += 1
        else:
            self.report.added += 1
        self.pending.append(prepared)
        if sum(len(p[1]) for p in self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch = Batch()
        for info, docs, tokens, vectors in self.pending:
            offset = len(batch.docs)
            batch.sources.append(info)
            batch.docs.extend(docs)
            batch.tokens.extend(tokens)
            for name, fv in vectors.items():
                got = batch.vectors.get(name)
                pos = fv.positions + offset
                batch.vectors[name] = (
                    FieldVectors(pos, fv.vectors)
                    if got is None
                    else FieldVectors(
                        np.concatenate([got.positions, pos]), np.vstack([got.vectors, fv.vectors])
                    )
                )
        if len(batch.tokens) != len(batch.docs):
            batch.tokens = []  # the store analyses the text itself
        self.store.write(batch)
        self.report.chunks += len(batch.docs)
        self.pending = []


def start_ray(address: str | None, workers: int) -> Any:
    """Connect to a Ray cluster at `address`, or start a local one with `workers` CPUs."""
    ray = require("ray", "scale")
    # Ray Data reports every dataset's progress at INFO on the driver's console
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers,
                _node_ip_address="127.0.0.1",  # a local cluster listens on loopback only
                include_dashboard=False,
                logging_level="WARNING",
                log_to_driver=False,
            )
    return ray


def index_paths_with_ray(
    store: Store,
    paths: Sequence[str | Path],
    config: IndexConfig,
    *,
    options: RayOptions | None = None,
    batch_size: int = 256,
    prune: bool = False,
) -> IndexReport:
    """Index files and folders with Ray Data; the same report and store contents as
    `build_indexer(store, config).index_paths(paths)`."""
    check_ray_config(config)
    opts = options or RayOptions()
    workers = opts.workers or config.workers
    started = time.perf_counter()
    report = IndexReport()
    roots = [Path(p).expanduser().resolve() for p in paths]
    for root in roots:
        if not root.exists():
            report.errors.append(IngestError(str(root), "no such file or directory"))
    found = list(iter_files([r for r in roots if r.exists()]))
    chosen = decide_auto(config, store.fields(), any(is_visual(p) for p in found))
    loaders = loader_table(chosen, store.media_root)
    known = store.source_hashes()
    files = []
    for path in found:
        # a one-document file whose hash is stored is skipped before any worker starts
        try:
            if known.get(str(path)) == file_hash(path):
                report.unchanged += 1
                continue
        except OSError as exc:
            report.errors.append(IngestError(str(path), exc.strerror or str(exc)))
            continue
        files.append(str(path))
    # The driver declares the fields (the store checks the encoders) before any work.
    for e in field_embedders(chosen, None):
        store.ensure_field(e.field, e.dim, e.info(), space=e.space)
    by_path: dict[str, set[str]] = {}
    for s in store.sources():
        by_path.setdefault(s["path"], set()).add(s["source_id"])
    writer = _Writer(store, batch_size, report, known)
    vanished: list[str] = []
    if files:
        ray = start_ray(opts.address, workers)
        read = _ReadStage(known, chosen.chunk_tokens, chosen.overlap, loaders)
        ds = _pipeline(ray, files, read, chosen, store.analyzer, opts, workers)
        for row in ds.iter_rows():
            kind, path = row["kind"], row["path"]
            if kind == "source":
                writer.add(pickle.loads(row["payload"]))
            elif kind == "unchanged":
                report.unchanged += int(row["n"])
            elif kind == "error":
                report.errors.append(IngestError(path, pickle.loads(row["payload"])))
            elif kind == "present":
                vanished.extend(by_path.get(path, set()) - set(pickle.loads(row["payload"])))
        writer.flush()
    if vanished:
        store.delete_sources(vanished)
        report.deleted += len(vanished)
    if prune:
        report.deleted += Indexer(store, progress=False).prune(roots)
    store.checkpoint()
    report.seconds = time.perf_counter() - started
    return report


def _pipeline(
    ray: Any,
    files: list[str],
    read: _ReadStage,
    config: IndexConfig,
    analyzer: Analyzer | None,
    opts: RayOptions,
    workers: int,
) -> Any:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Small blocks: one JSONL/BEIR file reads as thousands of sources, and a block goes to
    # one embedding call, so large blocks would leave all but one worker idle.
    ctx.target_max_block_size = 1 << 20
    return (
        ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
        # Reading is light next to embedding and reserves no CPU: the embedding actors
        # hold one each, and a read stage waiting for a free CPU would never start.
        .flat_map(read, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=opts.readers))
        # Ray Data restarts a dead actor and retries its calls (max_restarts=-1 and
        # max_task_retries=-1 are its defaults for actor pools).
        .map_batches(
            _EmbedStage,
            fn_constructor_args=(config.to_dict(), analyzer.to_dict() if analyzer else None),
            batch_size=opts.sources_per_task,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
    )
