"""What only the Milvus backend has: server-side hybrid search, capability checks per server,
clear errors for a server that is down or a collection that does not match, retries and
resumable ingestion when the server goes away mid-run, URIs, media blobs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mmrag.errors import ConfigError, StoreError
from mmrag.index.batch import SourceInfo
from mmrag.index.bm25 import BM25Params
from mmrag.index.open import open_store, parse_milvus_uri
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.retrieve.fusion import rrf
from mmrag.retrieve.sparse import BM25Retriever
from mmrag.types import Document, Hit
from tests.scale.conftest import collection_name
from tests.scale.servers import LiteServer, free_port
from tests.scale.test_store_backends import DIM, ENCODER, ids, make_batch, scifact, unit_vectors

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install 'mmrag[scale]')")

from mmrag.index.milvus import MilvusStore  # noqa: E402


@pytest.fixture(scope="module")
def records(data_dir: Path) -> list[tuple[str, str]]:
    return scifact(data_dir, 300)


def filled(uri: str, records, **kwargs) -> MilvusStore:
    store = MilvusStore(uri, collection_name(), **kwargs)
    store.ensure_field("text", DIM, ENCODER)
    store.write(make_batch(records, unit_vectors(len(records))))
    return store


def test_hybrid_rrf_matches_client_side_fusion(lite_server, records) -> None:
    store = filled(lite_server.uri, records)
    queries = [t.split("\n")[0] for _, t in records[:40:4]]
    qvecs = unit_vectors(len(queries), seed=5)
    server = store.search_hybrid(queries, {"text": qvecs}, 10, depth=50)
    sparse = store.search_sparse(queries, 50, BM25Params())
    dense = store.search_dense("text", qvecs, 50)
    agree = 0
    for got, s, d in zip(server, sparse, dense, strict=True):
        lists = [[Hit(doc, score) for doc, score in member] for member in (s, d)]
        expected = rrf(lists, [1.0, 1.0], 60.0)[:10]
        assert [h for _, h in got] == pytest.approx([h.score for h in expected], rel=1e-4)
        agree += ids(got) == [h.doc.id for h in expected]
    assert agree >= len(queries) - 1  # equal scores may be ordered differently
    weighted = store.search_hybrid(queries, {"text": qvecs}, 5, fusion="weighted")
    assert all(len(w) == 5 for w in weighted)
    (filtered,) = store.search_hybrid(queries[:1], {"text": qvecs[:1]}, 10, filters={"n": 1})
    assert ids(filtered) == [records[1][0]]
    store.close()


def test_retriever_runs_on_milvus(lite_server, records) -> None:
    store = filled(lite_server.uri, records)
    ranked = BM25Retriever(store).retrieve(records[7][1].split("\n")[0], 3)
    assert ranked.ids()[0] == records[7][0]
    with pytest.raises(StoreError, match="k1=1.2, b=0.75, fixed"):
        BM25Retriever(store, k1=0.9).retrieve("cells", 3)
    with pytest.raises(StoreError, match="Lucene BM25 only"):
        BM25Retriever(store, method="bm25+").retrieve("cells", 3)
    store.close()


def test_milvus23_capabilities(milvus23_server, records) -> None:
    store = filled(milvus23_server.uri, records[:50])
    assert store.info()["bm25"] is False and store.caps.version == (2, 3, 5)
    with pytest.raises(StoreError, match="BM25 search needs Milvus >= 2.5"):
        store.search_sparse(["cells"], 3, BM25Params())
    with pytest.raises(StoreError, match="hybrid search needs Milvus >= 2.4"):
        store.search_hybrid(["cells"], {"text": unit_vectors(1)}, 3, sparse=False)
    assert len(store.search_dense("text", unit_vectors(2), 4)[1]) == 4
    store.close()


def test_server_down_names_the_uri() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match=f"cannot reach Milvus at {uri}"):
        MilvusStore(uri, "anything")


def test_reopen_and_schema_mismatch(lite_server, records) -> None:
    from pymilvus import DataType, MilvusClient

    store = filled(lite_server.uri, records[:20])
    name = store.name
    store.close()
    with MilvusStore(lite_server.uri, name, create=False, read_only=True) as again:
        assert len(again) == 20 and again.fields()["text"]["encoder"] == ENCODER
        with pytest.raises(StoreError, match="read-only"):
            again.delete(["x"])
    with MilvusStore(lite_server.uri, name) as again:
        with pytest.raises(StoreError, match="refusing to mix"):
            again.ensure_field("text", DIM, {"kind": "other"})
        with pytest.raises(StoreError, match="cannot add field 'image'"):
            again.ensure_field("image", 8, ENCODER)
    with pytest.raises(StoreError, match="built with analyzer"):
        from mmrag.index.analyzer import Analyzer

        MilvusStore(lite_server.uri, name, analyzer=Analyzer(stemmer=None))
    with pytest.raises(StoreError, match="no mmrag collection"):
        MilvusStore(lite_server.uri, collection_name(), create=False)

    # someone replaces the documents collection with another layout
    client = MilvusClient(lite_server.uri)
    client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("vec_text", DataType.FLOAT_VECTOR, dim=8)
    client.create_collection(name, schema=schema)
    with pytest.raises(StoreError, match="does not match.*missing column 'text'.*dimension 8"):
        MilvusStore(lite_server.uri, name)
    # a collection mmrag never made is not written into
    foreign = collection_name("foreign")
    client.create_collection(foreign, schema=schema)
    with pytest.raises(StoreError, match="not created by mmrag"):
        MilvusStore(lite_server.uri, foreign)
    client.close()


def _corpus(records) -> list:
    out = []
    for k, (doc_id, text) in enumerate(records):
        doc = Document(id=doc_id, text=text, source_id=doc_id, metadata={"n": k})
        out.append((SourceInfo(source_id=doc_id, content_hash=f"h{k}"), [doc]))
    return out


def test_server_lost_mid_ingest(tmp_path: Path, records) -> None:
    """A short outage: the batch is retried and lands. A long one: the run stops with a
    clear error, and a re-run after the restart resumes without duplicates."""
    server = LiteServer(tmp_path / "lite").start()
    try:
        # retries wait 1 + 2 + 4 + 8 s: a restart of Milvus Lite takes seconds on a busy machine
        store = MilvusStore(server.uri, "ingest", retries=4, retry_delay=1.0)
        corpus = _corpus(records)

        def outage(at: int, restart_after: float | None):
            for i, item in enumerate(corpus):
                if i == at:
                    server.kill()
                    if restart_after is not None:
                        threading.Timer(restart_after, server.start).start()
                yield item

        indexer = Indexer(store, batch_size=25, progress=False)
        # The collection is created with the first batch; the indexer reads ahead of its
        # writes, so without this a kill could land inside that create, which leaves
        # Milvus Lite with a half-made collection folder ("File exists") on restart.
        indexer.index_records(corpus[:25])
        report = indexer.index_records(outage(100, restart_after=0.5))
        assert report.added == 275 and report.unchanged == 25 and len(store) == 300

        store.delete_sources([r[0] for r in records[150:]])
        with pytest.raises(StoreError, match=f"Milvus at {server.uri}.*after 5 attempts"):
            indexer.index_records(outage(200, restart_after=None))
        server.start()
        report = Indexer(store, batch_size=25, progress=False).index_records(corpus)
        # The indexer reads sources ahead of its writes (a prefetch thread), so the kill at
        # source 200 may come before any batch past 150 committed: at least those 150 stay.
        assert report.unchanged >= 150 and report.added == 300 - report.unchanged
        assert len(store) == 300
        got = store.get([r[0] for r in records])
        assert sorted(d.id for d in got) == sorted(r[0] for r in records)
        store.close()
    finally:
        server.stop()


def test_open_store_picks_the_backend(lite_server, tmp_path: Path) -> None:
    loc = parse_milvus_uri("milvus://db.internal/papers?blobs=/srv/blobs")
    assert (loc.uri, loc.collection, loc.blob_dir) == (
        "http://db.internal:19530",
        "papers",
        Path("/srv/blobs"),
    )
    for bad in ("milvus://host:1/", "milvus:///c", "milvus://h:1/c?x=1", "milvus://h:99999/c"):
        with pytest.raises(ConfigError):
            parse_milvus_uri(bad)
    with pytest.raises(ConfigError, match="unknown store URI"):
        open_store("s3://bucket/store")
    with open_store(tmp_path / "embedded", create=True) as st:
        assert isinstance(st, EmbeddedStore)
    port = lite_server.uri.rsplit(":", 1)[1]
    uri = f"milvus://127.0.0.1:{port}/{collection_name()}?blobs={tmp_path / 'blobs'}"
    with pytest.raises(StoreError, match="no mmrag collection"):
        open_store(uri)
    with open_store(uri, create=True) as st:
        assert isinstance(st, MilvusStore) and st.blob_root == tmp_path / "blobs"


def test_media_blobs_live_in_the_blob_folder(lite_server, tmp_path: Path, data_dir: Path) -> None:
    from mmrag.index.media import media_resolver

    image = next((data_dir / "flickr8k").rglob("*.jpg"))
    store = MilvusStore(lite_server.uri, collection_name(), blob_dir=tmp_path / "blobs")
    ref = store.store_blob(image)
    assert store.store_blob(image) == ref  # content-addressed: stored once
    resolved = media_resolver(store.blob_root)(Document(id="img", media=ref))
    assert resolved is not None and resolved.read_bytes() == image.read_bytes()
    assert resolved.is_relative_to(tmp_path / "blobs")
    store.close()


def test_filter_values_stay_literals(lite_server, records) -> None:
    from mmrag.index.milvus.filters import to_milvus_expr

    store = filled(lite_server.uri, records[:30])
    vec = unit_vectors(1)
    for hostile in ('" or id != "', '\\" or true or \\"', 'de" || "1" == "1'):
        assert store.search_dense("text", vec, 30, {"lang": hostile}) == [[]]
    with pytest.raises(ConfigError, match="bad filter key"):
        to_milvus_expr({'lang"] == 1 or metadata["x': 1})
    with pytest.raises(ConfigError, match="unknown operator"):
        to_milvus_expr({"n": {"$regex": "x"}})
    assert (
        to_milvus_expr({"a.b": {"$in": [1, "x"]}})
        == '((metadata["a"]["b"] == 1 or metadata["a"]["b"] == "x"))'
    )
    store.close()


def test_the_server_hybrid_retriever_ranks_as_client_side_rrf(lite_server, tmp_path) -> None:
    from mmrag.models.onnx_text import OnnxTextEncoder
    from mmrag.retrieve import RETRIEVERS

    corpus = Path(__file__).resolve().parents[2] / "examples" / "corpus"
    encoder = OnnxTextEncoder("bge-small-en-v1.5")
    store = MilvusStore(lite_server.uri, collection_name("sh"), blob_dir=tmp_path)
    Indexer(store, encoder, progress=False).index_paths([corpus])
    assert store.server_hybrid
    server = RETRIEVERS.create("server-hybrid", store=store, depth=50)
    client = RETRIEVERS.create("hybrid", store=store, depth=50)
    questions = [
        "Who invented the printing press?",
        "How do honeybees tell each other where flowers are?",
        "What makes the tides?",
        "How does a heat pump move heat?",
    ]
    for question in questions:
        got, expected = server.retrieve(question, 5), client.retrieve(question, 5)
        assert got.ids() == expected.ids(), question
        assert [h.score for h in got.hits] == pytest.approx(
            [h.score for h in expected.hits], rel=1e-4
        )
    with pytest.raises(ConfigError, match="does not fuse"):
        RETRIEVERS.create("server-hybrid", store=EmbeddedStore(tmp_path / "embedded"))
    store.close()
