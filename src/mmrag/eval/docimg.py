"""Document-image retrieval on SROIE receipts: company name or total → the receipt image.

Each receipt image is ingested like any image file (OCR text on the IMAGE document).
Queries are the distinct values of a key field; every receipt with that value is
relevant (the 80 shared receipts come from 50 companies, so "SYARIKAT PERNIAGAAN GIN
KEE" has 11 relevant receipts, and some totals repeat too). Empty values are skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, IngestError
from mmrag.eval.metrics import Qrels, evaluate
from mmrag.retrieve.base import Retriever
from mmrag.types import Query

FIELDS = ("company", "total")
RETRIEVERS = ("ocr-text", "bm25", "multimodal")


def sroie_queries(
    directory: Path, field: str, limit: int | None = None
) -> tuple[dict[str, str], Qrels]:
    """(query id -> text, qrels over image paths) for one key field of SROIE."""
    if field not in FIELDS:
        raise ConfigError(f"unknown SROIE field {field!r}; choose one of {FIELDS}")
    keys = sorted((Path(directory) / "keys").glob("*.json"))
    if not keys:
        raise IngestError(str(directory), "no keys/*.json (expected the SROIE folder)")
    if limit:
        keys = keys[:limit]
    by_value: dict[str, list[str]] = {}
    for file in keys:
        try:
            value = str(json.loads(file.read_text(encoding="utf-8")).get(field, "")).strip()
        except (OSError, json.JSONDecodeError) as exc:
            raise IngestError(str(file), f"not a readable key file: {exc}") from exc
        image = (Path(directory) / "images" / f"{file.stem}.jpg").resolve()
        if value:
            by_value.setdefault(value, []).append(str(image))
    queries, qrels = {}, {}
    for n, (value, images) in enumerate(sorted(by_value.items())):
        qid = f"{field}-{n}"
        queries[qid] = value
        qrels[qid] = dict.fromkeys(images, 1)
    return queries, qrels


def receipt_store(
    directory: Path, cache: Path, limit: int | None = None, show: bool = False
) -> Any:
    """A store of the receipt images (OCR on), built once per image set and reused."""
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer

    images = sorted((Path(directory) / "images").glob("*.jpg"))[:limit]
    key = hashlib.sha256(json.dumps([str(p) for p in images]).encode()).hexdigest()[:12]
    store = EmbeddedStore(Path(cache) / f"sroie-{key}")
    report = Indexer(store, None, progress=show).index_paths(images)
    if report.errors:
        store.close()
        raise IngestError(report.errors[0].path, report.errors[0].reason)
    return store


def _retriever(name: str, store: Any) -> Retriever:
    from mmrag.retrieve.multimodal import MultimodalRetriever
    from mmrag.retrieve.ocr_text import OCRTextRetriever
    from mmrag.retrieve.sparse import BM25Retriever

    if name == "ocr-text":
        return OCRTextRetriever(store)
    if name == "bm25":
        return BM25Retriever(store)
    if name == "multimodal":
        return MultimodalRetriever(store, [BM25Retriever(store), OCRTextRetriever(store)])
    raise ConfigError(f"unknown retriever {name!r}; choose one of {RETRIEVERS}")


def eval_docimg_sroie(
    directory: Path,
    cache: Path,
    retriever: str = "ocr-text",
    limit: int | None = None,
    show: bool = False,
) -> dict[str, Any]:
    """The body of `mmrag eval docimg sroie DIR`: MRR@10 per key field, and overall."""
    started = time.perf_counter()
    with receipt_store(directory, cache, limit, show) as store:
        index_seconds = time.perf_counter() - started
        r = _retriever(retriever, store)
        result: dict[str, Any] = {"retriever": retriever, "receipts": store.count_sources()}
        all_rr = []
        for field in FIELDS:
            queries, qrels = sroie_queries(directory, field, limit)
            run = {}
            for qid, text in queries.items():
                ranked = r.retrieve(Query(text=text, id=qid), 10)
                run[qid] = {h.doc.group: h.score for h in ranked.by_group()}
            scores = evaluate(qrels, run, ["mrr@10", "recall@1"])
            result[f"{field}_mrr@10"] = round(scores["mrr@10"], 4)
            result[f"{field}_r@1"] = round(scores["recall@1"], 4)
            result[f"{field}_queries"] = len(queries)
            all_rr.append((scores["mrr@10"], len(queries)))
        total = sum(n for _, n in all_rr)
        result["mrr@10"] = round(sum(m * n for m, n in all_rr) / max(total, 1), 4)
        result["index_seconds"] = round(index_seconds, 1)
    return result
