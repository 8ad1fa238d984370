"""SparseIndex on SciFact, checked against bm25s, rank_bm25 and scikit-learn.

The same token lists (our Analyzer's) go to our index and to each reference, so any
difference is a scoring or bookkeeping difference, not a tokenisation one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError, StoreError
from mmrag.index import sparse
from mmrag.index.analyzer import Analyzer
from mmrag.index.bm25 import BM25Params
from mmrag.index.sparse import SparseIndex

KERNELS = ["numpy", "numba"]


@dataclass
class SciFact:
    doc_ids: list[str]
    docs: list[list[str]]
    query_ids: list[str]
    queries: list[list[str]]
    qrels: dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def scifact(data_dir: Path) -> SciFact:
    root = data_dir / "scifact"
    analyzer = Analyzer()
    doc_ids, docs = [], []
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            doc_ids.append(rec["_id"])
            docs.append(analyzer.tokens(f"{rec['title']} {rec['text']}"))
    texts = {}
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            texts[rec["_id"]] = rec["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    query_ids = list(qrels)
    return SciFact(doc_ids, docs, query_ids, [analyzer.tokens(texts[q]) for q in query_ids], qrels)


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the numpy path and, when numba is installed, with the kernel."""
    if request.param == "numba":
        pytest.importorskip("numba", reason="numba (dev extra) not installed")
    monkeypatch.setattr(sparse.kernel, "KERNEL", request.param)
    return request.param


def rows_for(n: int) -> np.ndarray:
    """Sparse, non-contiguous row ids, as SQLite rowids after deletions look."""
    return np.arange(n, dtype=np.int64) * 7 + 3


def doc_of(rows: np.ndarray) -> np.ndarray:
    return (rows - 3) // 7


def build(docs: list[list[str]], rows: np.ndarray | None = None) -> SparseIndex:
    index = SparseIndex()
    index.add(rows_for(len(docs)) if rows is None else rows, docs)
    return index


def assert_same_results(a: list, b: list, exact: bool = True) -> None:
    assert len(a) == len(b)
    for (rows_a, scores_a), (rows_b, scores_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(rows_a, rows_b)
        if exact:
            np.testing.assert_array_equal(scores_a, scores_b)
        else:
            np.testing.assert_allclose(scores_a, scores_b, rtol=1e-6)


# --- parity with the reference implementations ---------------------------------------


def test_lucene_matches_bm25s_on_scifact(scifact: SciFact, kernel: str) -> None:
    import bm25s

    index = build(scifact.docs)
    ours = index.search_many(scifact.queries, 10)
    ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    ref.index(scifact.docs, show_progress=False)
    ref_docs, ref_scores = ref.retrieve(scifact.queries, k=10, show_progress=False)

    same = 0
    for (rows, scores), want_docs, want_scores in zip(ours, ref_docs, ref_scores, strict=True):
        positive = want_scores > 0  # bm25s pads with zero-score documents
        same += doc_of(rows).tolist() == want_docs[positive].tolist()
        n = min(len(scores), int(positive.sum()))
        np.testing.assert_allclose(scores[:n], want_scores[:n], rtol=1e-4)
    assert same >= 0.95 * len(scifact.queries)


def test_lucene_ndcg_on_scifact(scifact: SciFact) -> None:
    import ir_measures
    from ir_measures import nDCG

    index = build(scifact.docs)
    run = {}
    for qid, (rows, scores) in zip(
        scifact.query_ids, index.search_many(scifact.queries, 100), strict=True
    ):
        run[qid] = {scifact.doc_ids[d]: float(s) for d, s in zip(doc_of(rows), scores, strict=True)}
    ndcg = ir_measures.calc_aggregate([nDCG @ 10], scifact.qrels, run)[nDCG @ 10]
    assert ndcg >= 0.665, ndcg  # published BM25 (Lucene) on SciFact: 0.665; ours ~0.679


@pytest.mark.parametrize("method", ["atire", "bm25l", "bm25+"])
def test_variants_match_bm25s(scifact: SciFact, method: str, kernel: str) -> None:
    """bm25l and bm25+ credit absent query terms as bm25s does (idf * tf_fn(0))."""
    import bm25s

    docs, queries = scifact.docs[:2000], scifact.queries[:100]
    params = BM25Params(method=method, k1=1.5, b=0.75, delta=0.5)
    index = build(docs)
    ref = bm25s.BM25(method=method, k1=1.5, b=0.75, delta=0.5)
    ref.index(docs, show_progress=False)
    checked = same = 0
    for (rows, scores), tokens in zip(index.search_many(queries, 10, params), queries, strict=True):
        if not any(t in ref.vocab_dict for t in tokens):
            assert len(rows) == 0
            continue
        want = ref.get_scores(tokens)
        np.testing.assert_allclose(scores, want[doc_of(rows)], rtol=1e-4)
        # bm25s sums in float32, so near-ties may order differently: most lists must agree.
        same += doc_of(rows).tolist() == _reference_top(want, _docs_with_any(docs, tokens), 10)
        checked += 1
    assert checked > 50 and same >= 0.95 * checked


def _docs_with_any(docs: list[list[str]], tokens: list[str]) -> list[int]:
    wanted = set(tokens)
    return [i for i, d in enumerate(docs) if wanted.intersection(d)]


def _reference_top(scores: np.ndarray, candidates: list[int] | np.ndarray, k: int) -> list[int]:
    """The reference's top k among `candidates`, ties broken by document number as ours."""
    hit = np.asarray(candidates, dtype=np.int64)
    return hit[np.lexsort((hit, -scores[hit]))][:k].tolist()


@pytest.fixture(scope="module")
def small(scifact: SciFact) -> tuple[list[list[str]], list[list[str]]]:
    """300 documents and 30 queries for the slow pure-Python rank_bm25, plus two queries of
    terms that most of these documents contain ('we', 'use'), whose classic idf is < 0."""
    analyzer = Analyzer()
    extra = [analyzer.tokens("we use cells"), analyzer.tokens("we found results")]
    return scifact.docs[:300], scifact.queries[:30] + extra


def test_robertson_with_epsilon_matches_rank_bm25(small: tuple, kernel: str) -> None:
    from rank_bm25 import BM25Okapi

    docs, queries = small
    ref = BM25Okapi(docs, k1=1.2, b=0.75, epsilon=0.25)
    # 'we' is in most of these documents: rank_bm25 floors its negative idf to eps * mean.
    assert ref.idf["we"] == pytest.approx(0.25 * ref.average_idf)
    index = build(docs)
    params = BM25Params(method="robertson", epsilon=0.25)
    for (rows, scores), tokens in zip(
        index.search_many(queries, 300, params), queries, strict=True
    ):
        want = ref.get_scores(tokens)
        assert sorted(doc_of(rows).tolist()) == np.flatnonzero(want > 0).tolist()
        np.testing.assert_allclose(scores, want[doc_of(rows)], rtol=1e-4)
        assert list(scores) == sorted(scores, reverse=True)


def test_robertson_classic_idf_can_be_negative(small: tuple) -> None:
    from rank_bm25 import BM25Okapi

    docs, queries = small
    index = build(docs)
    params = BM25Params(method="robertson")
    ref = BM25Okapi(docs, k1=1.2, b=0.75, epsilon=0.25)
    df = Counter(t for d in docs for t in set(d))
    negative = {t for t, n in df.items() if n > len(docs) / 2}
    assert "we" in negative
    # A document that only has a negative-idf term scores below 0: never a result.
    rows, scores = index.search(["we"], 300, params)
    assert len(rows) == 0
    # Queries without such terms score exactly as rank_bm25 (whose floor never applies).
    for tokens in queries[:30]:
        if negative.intersection(tokens):
            continue
        rows, scores = index.search(tokens, 300, params)
        want = ref.get_scores(tokens)
        np.testing.assert_allclose(scores, want[doc_of(rows)], rtol=1e-4)


def test_bm25plus_matches_rank_bm25(small: tuple, kernel: str) -> None:
    from rank_bm25 import BM25Plus

    docs, queries = small
    ref = BM25Plus(docs, k1=1.2, b=0.75, delta=0.5)
    index = build(docs)
    for (rows, scores), tokens in zip(
        index.search_many(queries, 300, BM25Params(method="bm25+")), queries, strict=True
    ):
        want = ref.get_scores(tokens)
        assert sorted(doc_of(rows).tolist()) == _docs_with_any(docs, tokens)
        np.testing.assert_allclose(scores, want[doc_of(rows)], rtol=1e-4)


def test_bm25l_matches_rank_bm25_where_tf_is_one(small: tuple) -> None:
    """rank_bm25 0.2.2's BM25L multiplies by tf once more (its issue #5, fixed upstream in
    PR #20 but not released), and scores absent terms 0: where every query term occurs at
    most once in a document, the difference is bm25s' constant for absent terms only."""
    from rank_bm25 import BM25L

    docs, queries = small
    params = BM25Params(method="bm25l", k1=1.2, b=0.75, delta=0.5)
    ref = BM25L(docs, k1=1.2, b=0.75, delta=0.5)
    index = build(docs)
    absent = (1.2 + 1) * 0.5 / (1.2 + 0.5)
    checked = 0
    for tokens in queries:
        rows, scores = index.search(tokens, 300, params)
        want = ref.get_scores(tokens)
        for d, score in zip(doc_of(rows).tolist(), scores.tolist(), strict=True):
            if all(docs[d].count(t) <= 1 for t in tokens):
                lacking = sum(ref.idf.get(t, 0.0) for t in tokens if t not in docs[d])
                assert score == pytest.approx(want[d] + absent * lacking, rel=1e-4)
                checked += 1
    assert checked > 100


def test_tfidf_matches_scikit_learn(scifact: SciFact, kernel: str) -> None:
    sklearn_text = pytest.importorskip(
        "sklearn.feature_extraction.text", reason="scikit-learn (dev extra) not installed"
    )
    docs, queries = scifact.docs[:2000], scifact.queries[:100]
    vectorizer = sklearn_text.TfidfVectorizer(
        analyzer=lambda tokens: tokens, sublinear_tf=True, lowercase=False
    )
    matrix = vectorizer.fit_transform(docs)
    index = build(docs)
    for (rows, scores), tokens in zip(
        index.search_many(queries, 10, BM25Params(method="tfidf")), queries, strict=True
    ):
        want = (matrix @ vectorizer.transform([tokens]).T).toarray().ravel()
        assert doc_of(rows).tolist() == _reference_top(want, np.flatnonzero(want > 0), 10)
        np.testing.assert_allclose(scores, want[doc_of(rows)], rtol=1e-5)


def test_duplicate_query_terms_count_as_in_bm25s(scifact: SciFact) -> None:
    import bm25s

    docs = scifact.docs[:1000]
    index = build(docs)
    ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    ref.index(docs, show_progress=False)
    tokens = ["cell", "cell", "protein"]
    rows, scores = index.search(tokens, 20)
    np.testing.assert_allclose(scores, ref.get_scores(tokens)[doc_of(rows)], rtol=1e-5)
    once, twice = index.search(["cell"], 5), index.search(["cell", "cell"], 5)
    np.testing.assert_array_equal(once[0], twice[0])
    np.testing.assert_allclose(twice[1], 2 * once[1], rtol=1e-6)


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+", "tfidf"])
def test_numba_kernel_equals_numpy_path(
    scifact: SciFact, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("numba", reason="numba (dev extra) not installed")
    index = build(scifact.docs[:3000])
    index.delete(rows_for(3000)[::5])  # dead documents must never come back
    allowed = rows_for(3000)[::3]
    params = BM25Params(method=method)
    queries = scifact.queries[:150]
    results = {}
    for kernel in ("numpy", "numba"):
        monkeypatch.setattr(sparse.kernel, "KERNEL", kernel)
        results[kernel] = (
            index.search_many(queries, 10, params),
            index.search_many(queries, 10, params, allowed=allowed),
        )
    assert_same_results(results["numpy"][0], results["numba"][0], exact=False)
    assert_same_results(results["numpy"][1], results["numba"][1], exact=False)


# --- incremental updates, filters, persistence -----------------------------------------


def test_incremental_equals_from_scratch(scifact: SciFact, kernel: str) -> None:
    docs, queries = scifact.docs[:3000], scifact.queries[:60]
    rows = rows_for(len(docs))
    index = SparseIndex()
    index.add(rows[:1500], docs[:1500])
    index.search_many(queries[:1], 10)  # a first segment
    for lo in range(1500, 3000, 100):  # small adds, each searched: many segments, merges
        index.add(rows[lo : lo + 100], docs[lo : lo + 100])
        index.search(queries[0], 10)
    gone = rows[::7]
    index.delete(gone)
    index.delete([10**12, -5])  # unknown rows are ignored
    live = np.setdiff1d(rows, gone)
    scratch = build([docs[i] for i in doc_of(live)], live)

    assert len(index) == len(scratch) == len(live)
    np.testing.assert_array_equal(index.rows(), live)
    for method in ("lucene", "bm25+", "tfidf"):
        params = BM25Params(method=method)
        got = index.search_many(queries, 10, params)
        assert_same_results(got, scratch.search_many(queries, 10, params))
        for r, _ in got:
            assert not np.isin(r, gone).any()


def test_statistics_count_live_documents_only(scifact: SciFact) -> None:
    """Deleting documents changes N, avgdl and df exactly as never having added them."""
    import bm25s

    docs = scifact.docs[:1000]
    index = build(docs)
    index.delete(rows_for(1000)[500:])
    ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    ref.index(docs[:500], show_progress=False)
    for tokens in scifact.queries[:40]:
        rows, scores = index.search(tokens, 10)
        assert (doc_of(rows) < 500).all()
        if len(rows):
            np.testing.assert_allclose(scores, ref.get_scores(tokens)[doc_of(rows)], rtol=1e-5)


def test_readding_a_row_replaces_it() -> None:
    index = SparseIndex()
    index.add([10, 20, 30], [["apple", "pie"], ["banana"], ["cherry", "apple"]])
    index.add([20], [["apple", "apple"]])
    assert len(index) == 3
    assert index.search(["banana"], 5)[0].tolist() == []
    assert index.search(["apple"], 5)[0].tolist()[0] == 20
    index.add([40, 40], [["kiwi"], ["mango"]])  # within one batch the later one wins
    assert index.search(["kiwi"], 5)[0].tolist() == []
    assert index.search(["mango"], 5)[0].tolist() == [40]
    np.testing.assert_array_equal(index.rows(), [10, 20, 30, 40])


def test_compaction_after_mass_deletes(scifact: SciFact, kernel: str) -> None:
    docs, queries = scifact.docs[:1000], scifact.queries[:30]
    rows = rows_for(1000)
    index = build(docs)
    index.search(queries[0], 10)
    vocab_before = index.vocabulary_size
    index.delete(rows[:800])  # over half dead: the next search compacts
    got = index.search_many(queries, 10)
    scratch = build(docs[800:], rows[800:])
    assert_same_results(got, scratch.search_many(queries, 10))
    assert index.vocabulary_size == scratch.vocabulary_size < vocab_before
    index.add(rows[:10], docs[:10])  # and it keeps working after renumbering
    np.testing.assert_array_equal(index.rows(), np.concatenate([rows[:10], rows[800:]]))


def test_allowed_restricts_results(scifact: SciFact, kernel: str) -> None:
    docs, queries = scifact.docs[:2000], scifact.queries[:40]
    index = build(docs)
    allowed = np.sort(rows_for(2000)[1::4])
    for tokens in queries:
        everything = index.search(tokens, 2000)
        rows, scores = index.search(tokens, 10, allowed=allowed)
        keep = np.isin(everything[0], allowed)
        np.testing.assert_array_equal(rows, everything[0][keep][:10])
        np.testing.assert_array_equal(scores, everything[1][keep][:10])
    assert index.search(queries[0], 10, allowed=np.empty(0, np.int64))[0].tolist() == []
    assert index.search(queries[0], 10, allowed=np.array([10**9]))[0].tolist() == []


def test_empty_index_round_trip(tmp_path: Path) -> None:
    SparseIndex().save(tmp_path / "empty.idx")
    loaded = SparseIndex.load(tmp_path / "empty.idx")
    assert len(loaded) == 0 and loaded.rows().tolist() == []
    assert loaded.search(["cell"], 3)[0].tolist() == []


def test_unknown_and_empty_queries(scifact: SciFact) -> None:
    index = build(scifact.docs[:100])
    for tokens in (["zzzunseenzzz"], [], ["zzz", "qqq"]):
        rows, scores = index.search(tokens, 10)
        assert rows.dtype == np.int64 and scores.dtype == np.float32
        assert len(rows) == len(scores) == 0
    assert all(len(r) == 0 for r, _ in SparseIndex().search_many([["cell"]], 5))
    index.delete(rows_for(100))
    assert len(index) == 0 and index.search(["cell"], 5)[0].tolist() == []


def test_bad_input_is_refused(scifact: SciFact) -> None:
    index = build(scifact.docs[:10])
    with pytest.raises(ConfigError):
        index.search(["cell"], 0)
    with pytest.raises(ConfigError):
        BM25Params(method="bm26")
    with pytest.raises(TypeError):
        index.search("cell", 5)  # a raw string, not tokens
    with pytest.raises(TypeError):
        index.add([99], ["a raw string"])
    with pytest.raises(ValueError):
        index.add([1, 2], [["a"]])
    with pytest.raises(TypeError):
        index.add([1.5], [["a"]])


def test_save_and_load_round_trip(scifact: SciFact, tmp_path: Path) -> None:
    docs, queries = scifact.docs[:1500], scifact.queries[:50]
    index = build(docs)
    index.delete(rows_for(1500)[::3])
    index.add([10**15], [["émigré", "中文", "cell"]])  # a huge row id and non-ASCII terms
    path = tmp_path / "sub" / "sparse.idx"
    index.save(path)
    index.save(path)  # over an existing file
    assert [p.name for p in path.parent.iterdir()] == ["sparse.idx"]  # no temp files left
    loaded = SparseIndex.load(path)
    assert len(loaded) == len(index)
    np.testing.assert_array_equal(loaded.rows(), index.rows())
    for method in ("lucene", "tfidf"):
        params = BM25Params(method=method)
        assert_same_results(
            loaded.search_many(queries, 10, params), index.search_many(queries, 10, params)
        )
    assert loaded.search(["中文"], 3)[0].tolist() == [10**15]
    loaded.add([5], [["cell"]])  # still writable
    assert 5 in loaded.rows()


def test_load_refuses_damaged_files(scifact: SciFact, tmp_path: Path) -> None:
    path = tmp_path / "sparse.idx"
    build(scifact.docs[:50]).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError):
        SparseIndex.load(path)
    path.write_bytes(b"not an index")
    with pytest.raises(StoreError):
        SparseIndex.load(path)
    arrays = {
        "format": np.array([1]),
        "rows": np.array([1, 2]),
        "ptr": np.array([0, 1, 5]),  # points past the postings
        "terms": np.array([0], np.int32),
        "tf": np.array([1], np.int32),
        "vocab": np.frombuffer(b"a", np.uint8),
        "vocab_ptr": np.array([0, 1]),
    }
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(StoreError):
        SparseIndex.load(tmp_path / "bad.npz")


def _save_format_2(index: SparseIndex, path: Path) -> None:
    """The npz layout that format-2 saves wrote (the same arrays, zipped)."""
    index._flush()
    encoded = [t.encode("utf-8") for t in index._terms]
    arrays = {
        "format": np.array([2], dtype=np.int64),
        "rows": index._rows.view,
        "ptr": index._ptr.view,
        "terms": index._post_terms.view,
        "tf": index._post_tf.view,
        "vocab": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "vocab_ptr": np.concatenate([[0], np.cumsum([len(e) for e in encoded])]),
        "lengths": index._lengths.view,
        "df": index._df.view,
    } | index._segs.arrays()
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_format_2_files_still_load(scifact: SciFact, tmp_path: Path) -> None:
    index = build(scifact.docs[:800])
    _save_format_2(index, tmp_path / "old.idx")
    old = SparseIndex.load(tmp_path / "old.idx")
    assert old.tag is None  # no stamp: the store compares it row by row
    queries = scifact.queries[:40]
    assert_same_results(old.search_many(queries, 10), index.search_many(queries, 10))


def test_mapped_index_changes_stay_in_memory(scifact: SciFact, tmp_path: Path) -> None:
    """A loaded (mapped) index takes adds and deletes; its file is never written."""
    path = tmp_path / "sparse.idx"
    build(scifact.docs[:300]).save(path, tag=7)
    before = path.read_bytes()
    loaded = SparseIndex.load(path)
    assert loaded.tag == 7
    loaded.delete(rows_for(300)[:100])
    loaded.add([10**6], [["cell", "cell", "zzz"]])
    reference = build(scifact.docs[100:300], rows_for(300)[100:])
    reference.add([10**6], [["cell", "cell", "zzz"]])
    queries = scifact.queries[:40]
    assert_same_results(loaded.search_many(queries, 10), reference.search_many(queries, 10))
    assert path.read_bytes() == before
    assert loaded.contains(np.array([3, 1053, 10**6, 10**7])).tolist() == [False, True, True, False]


def test_save_keeps_a_few_dead_positions_uncompacted(scifact: SciFact, tmp_path: Path) -> None:
    docs, queries = scifact.docs[:1000], scifact.queries[:50]
    index = build(docs)
    index.delete(rows_for(1000)[::10])  # 10 %: saved with alive flags, not compacted
    index.save(tmp_path / "sparse.idx")
    loaded = SparseIndex.load(tmp_path / "sparse.idx")
    assert loaded._n_dead == 100 and len(loaded) == 900
    np.testing.assert_array_equal(loaded.rows(), index.rows())
    keep = np.ones(1000, dtype=bool)
    keep[::10] = False
    fresh = build([d for d, k in zip(docs, keep, strict=True) if k], rows_for(1000)[keep])
    for method in ("lucene", "tfidf"):
        params = BM25Params(method=method)
        expected = fresh.search_many(queries, 10, params)
        assert_same_results(loaded.search_many(queries, 10, params), expected)
    loaded.delete(rows_for(1000)[:300])  # 37 % dead now: the save compacts
    loaded.save(tmp_path / "sparse.idx")
    again = SparseIndex.load(tmp_path / "sparse.idx")
    assert again._n_dead == 0 and len(again) == 630
