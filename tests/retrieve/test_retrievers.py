"""Retrievers end to end on a real SciFact subset with the packaged MiniLM encoder."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mmrag.eval.datasets import load_beir
from mmrag.eval.metrics import evaluate
from mmrag.eval.runner import Corpus, cached_store, run_queries
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.models.text import load_text_encoder
from mmrag.retrieve import RETRIEVERS, Retriever
from mmrag.retrieve.fusion import rrf
from mmrag.retrieve.hybrid import HybridRetriever
from mmrag.types import Query

N_QUERIES = 60


@pytest.fixture(scope="module")
def scifact_subset(data_dir: Path) -> tuple[Corpus, dict[str, str], dict[str, dict[str, int]]]:
    """60 test claims, their relevant abstracts, and 400 other abstracts as distractors."""
    beir = load_beir(data_dir / "scifact")
    qids = sorted(beir.queries)[:N_QUERIES]
    qrels = {q: beir.qrels[q] for q in qids}
    relevant = {d for q in qids for d in qrels[q]}
    others = sorted(set(beir.corpus) - relevant)
    keep = relevant | set(random.Random(0).sample(others, 400))
    corpus = Corpus(
        texts={d: beir.corpus[d]["text"] for d in beir.corpus if d in keep},
        titles={d: beir.corpus[d]["title"] for d in beir.corpus if d in keep},
    )
    return corpus, {q: beir.queries[q] for q in qids}, qrels


@pytest.fixture(scope="module")
def store(cache_dir: Path, scifact_subset) -> EmbeddedStore:
    """Built once and cached (keyed by corpus and encoder): embedding is the slow part."""
    corpus, _, _ = scifact_subset
    encoder = load_text_encoder("sentence-transformers")
    st = cached_store(cache_dir / "test-stores", "scifact-subset", corpus, encoder, show=False)
    yield st
    st.close()


def _ndcg(store: EmbeddedStore, name: str, scifact_subset, **params) -> float:
    _, queries, qrels = scifact_subset
    run, _ = run_queries(RETRIEVERS.create(name, store=store, **params), queries, 100, show=False)
    return evaluate(qrels, run, ["ndcg@10"])["ndcg@10"]


def test_each_retriever_finds_relevant_abstracts(store: EmbeddedStore, scifact_subset) -> None:
    scores = {name: _ndcg(store, name, scifact_subset) for name in ("bm25", "tfidf", "dense")}
    scores["hybrid"] = _ndcg(store, "hybrid", scifact_subset)
    scores["weighted"] = _ndcg(store, "hybrid", scifact_subset, fusion="weighted")
    # On ~460 abstracts the task is easier than the full corpus; these floors are far above
    # chance (a random ranking scores ~0.01) and below what each method reaches here.
    assert scores["bm25"] > 0.6, scores
    assert scores["dense"] > 0.6, scores
    assert scores["tfidf"] > 0.45, scores
    assert scores["hybrid"] >= max(scores["bm25"], scores["dense"]) - 0.02, scores
    assert scores["weighted"] > 0.6, scores


def test_bm25_variants_are_selectable(store: EmbeddedStore, scifact_subset) -> None:
    lucene = _ndcg(store, "bm25", scifact_subset)
    plus = _ndcg(store, "bm25", scifact_subset, method="bm25+", k1=1.5, b=0.75)
    flat = _ndcg(store, "bm25", scifact_subset, b=0.0)
    assert plus > 0.55 and flat > 0.4
    assert len({round(lucene, 6), round(plus, 6), round(flat, 6)}) == 3  # parameters take effect


def test_rrf_matches_its_definition(store: EmbeddedStore, scifact_subset) -> None:
    _, queries, _ = scifact_subset
    q = Query(next(iter(queries.values())))
    bm25 = RETRIEVERS.create("bm25", store=store).retrieve(q, 50).hits
    dense = RETRIEVERS.create("dense", store=store).retrieve(q, 50).hits
    fused = rrf([bm25, dense], [1.0, 1.0], k0=60)
    expected: dict[str, float] = {}
    for hits in (bm25, dense):
        for rank, h in enumerate(hits, 1):
            expected[h.doc.id] = expected.get(h.doc.id, 0.0) + 1 / (60 + rank)
    assert {h.doc.id: pytest.approx(h.score) for h in fused} == expected
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
    hybrid = RETRIEVERS.create("hybrid", store=store, depth=50).retrieve(q, 10)
    assert hybrid.ids() == [h.doc.id for h in fused[:10]]


def test_filters_restrict_every_retriever(store: EmbeddedStore, scifact_subset) -> None:
    corpus, queries, _ = scifact_subset
    some = sorted(corpus.texts)[:40]
    flt = {"source_id": {"$in": some}}
    for name in ("bm25", "dense", "hybrid"):
        ranked = RETRIEVERS.create(name, store=store).retrieve(
            Query(next(iter(queries.values())), filters=flt), 10
        )
        assert ranked.hits and {h.doc.source_id for h in ranked.hits} <= set(some), name


def test_chinese_questions_find_their_paragraph(tmp_path: Path, data_dir: Path) -> None:
    from mmrag.eval.datasets import load_squad_retrieval

    files = sorted((data_dir / "cmrc2018").glob("*.json"))
    squad = load_squad_retrieval(files[0], max_questions=100)
    with EmbeddedStore(tmp_path / "zh") as st:
        Indexer(st, None, chunk_tokens=0, progress=False).index_records(
            Corpus(texts=squad.paragraphs, titles={}).records()
        )
        run, _ = run_queries(RETRIEVERS.create("bm25", store=st), squad.questions, 10, show=False)
    mrr = evaluate(squad.qrels, run, ["mrr@10"])["mrr@10"]
    assert mrr > 0.7, mrr  # without segmentation almost nothing would match


class _ByDocuments(Retriever):
    """A member seen only through `retrieve_many`, so the hybrid fuses loaded hits (the
    path every member took before fusion moved to row keys)."""

    def __init__(self, inner: Retriever) -> None:
        self.inner, self.name = inner, inner.name

    def retrieve_many(self, queries, k=10):
        return self.inner.retrieve_many(queries, k)


# Equal RRF weights make ties (rank r in one list only, in either list), which fusion
# must break by document id in both paths.
@pytest.mark.parametrize(("fusion", "weights"), [("rrf", [1.0, 1.0]), ("weighted", [1.0, 0.7])])
def test_fusing_row_keys_ranks_exactly_as_fusing_documents(
    store: EmbeddedStore, scifact_subset, fusion: str, weights: list[float]
) -> None:
    _, queries, _ = scifact_subset
    members = [RETRIEVERS.create("bm25", store=store), RETRIEVERS.create("dense", store=store)]
    by_keys = HybridRetriever(store, members, fusion=fusion, weights=weights)
    by_docs = HybridRetriever(
        store, [_ByDocuments(m) for m in members], fusion=fusion, weights=weights
    )
    some = [Query(t) for t in list(queries.values())[:30]]
    some.append(
        Query(some[0].text, filters={"source_id": {"$in": sorted(store.source_hashes())[:50]}})
    )
    for k in (1, 10, 150):
        for a, b in zip(
            by_keys.retrieve_many(some, k), by_docs.retrieve_many(some, k), strict=True
        ):
            assert [h.doc.id for h in a.hits] == [h.doc.id for h in b.hits]
            assert [h.score for h in a.hits] == [h.score for h in b.hits]
            assert [h.scores for h in a.hits] == [h.scores for h in b.hits]
            assert [h.doc for h in a.hits] == [h.doc for h in b.hits]
            assert len(a.hits) == min(k, len(b.hits)) and a.hits
