"""OCRTextRetriever on SROIE receipts, checked against bm25s.

The documents are the receipts' key fields (company, address, date, total) as their OCR
reads them; every other receipt has the spaces of its company line dropped, as OCR often
does ("SDNBHD"). The same n-gram terms (`ocr_terms`) go to bm25s as the documents' and
the queries' tokens, so any difference is a scoring difference, not a tokenisation one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmrag.index.batch import SourceInfo
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.retrieve.ocr_text import OCRTextRetriever, ocr_terms
from mmrag.types import Document, Modality, Query

K1, B = 1.2, 0.75


def _receipt_text(number: int, keys: dict[str, str]) -> str:
    company = keys.get("company", "")
    if number % 2:
        company = company.replace(" ", "")
    lines = [company, keys.get("address", ""), keys.get("date", ""), f"TOTAL {keys['total']}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def receipts(data_dir: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(document id, OCR-like text, key fields) of the 80 SROIE receipts."""
    out = []
    for n, file in enumerate(sorted((data_dir / "sroie" / "keys").glob("*.json"))):
        keys = json.loads(file.read_text(encoding="utf-8"))
        out.append((file.stem, _receipt_text(n, keys), keys))
    return out


@pytest.fixture(scope="module")
def queries(receipts: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    """Company names as typed and as OCR glues them, totals, and parts of addresses."""
    out: list[str] = []
    for _, _, keys in receipts:
        company, address = keys.get("company", ""), keys.get("address", "")
        out += [company, company.replace(" ", ""), keys["total"], address[:20]]
    return list(dict.fromkeys(q for q in out if q.strip()))


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory, receipts: list) -> OCRTextRetriever:
    store = EmbeddedStore(tmp_path_factory.mktemp("receipts"))
    records = [
        (SourceInfo(rid, rid), [Document(id=rid, text=text, modality=Modality.IMAGE)])
        for rid, text, _ in receipts
    ]
    Indexer(store, None, progress=False).index_records(records)
    yield OCRTextRetriever(store, k1=K1, b=B)
    store.close()


def _reference(receipts: list) -> object:
    import bm25s

    ref = bm25s.BM25(method="lucene", k1=K1, b=B)
    ref.index([ocr_terms(text) for _, text, _ in receipts], show_progress=False)
    return ref


def _reference_top(scores: np.ndarray, candidates: list[int], k: int) -> list[int]:
    """The reference's top k among `candidates`, ties broken by document number as ours."""
    hit = np.asarray(candidates, dtype=np.int64)
    return hit[np.lexsort((hit, -scores[hit]))][:k].tolist()


def _check(retriever, receipts, queries, allowed: list[int] | None = None) -> int:
    """Compare every query's top 10 with bm25s; returns how many queries had hits."""
    ref = _reference(receipts)
    ids = [rid for rid, _, _ in receipts]
    number = {rid: i for i, rid in enumerate(ids)}
    doc_terms = [set(ocr_terms(text)) for _, text, _ in receipts]
    filters = {"id": {"$in": [ids[i] for i in allowed]}} if allowed is not None else None
    ranked = retriever.retrieve_many([Query(text=q, filters=filters) for q in queries], 10)
    with_hits = 0
    for q, result in zip(queries, ranked, strict=True):
        tokens = list(dict.fromkeys(ocr_terms(q)))  # ours counts each query term once
        want = np.asarray(ref.get_scores(tokens), dtype=np.float64)
        candidates = [
            i for i, terms in enumerate(doc_terms) if terms.intersection(tokens) and want[i] > 0
        ]
        if allowed is not None:
            candidates = sorted(set(candidates).intersection(allowed))
        got = [number[h.doc.id] for h in result.hits]
        assert got == _reference_top(want, candidates, 10), q
        if got:
            # Lucene's BM25 times Okapi's (k1 + 1): one constant factor for every score.
            ratio = np.array([h.score for h in result.hits]) / want[got]
            np.testing.assert_allclose(ratio, K1 + 1, rtol=1e-5)
            with_hits += 1
    return with_hits


def test_ocr_text_scores_match_bm25s_lucene(retriever, receipts, queries):
    assert len(queries) > 200
    assert _check(retriever, receipts, queries) == len(queries)


def test_ocr_text_filters_rank_as_bm25s_on_the_allowed_documents(retriever, receipts, queries):
    allowed = list(range(0, len(receipts), 3))
    assert _check(retriever, receipts, queries[:60], allowed) > 10


def test_glued_company_names_find_their_receipts(retriever, receipts):
    """The point of n-grams: a name found whether or not OCR kept its spaces."""
    found = 0
    for rid, _, keys in receipts:
        for query in (keys["company"], keys["company"].replace(" ", "")):
            top = retriever.retrieve(query, 20).ids()
            same_company = {r for r, _, k in receipts if k["company"] == keys["company"]}
            found += rid in top and top[0] in same_company
    assert found >= 0.95 * 2 * len(receipts)
