"""Cross-encoder and monoT5 rerankers on tiny random models, checked against the reference
libraries (sentence-transformers CrossEncoder, transformers generate) on real DL19 text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmrag.errors import ConfigError
from mmrag.rerank import RERANKERS
from tests.rerank.conftest import dl19_ranked
from tests.rerank.tiny_models import save_tiny_bert_classifier, save_tiny_t5

QID = "264014"  # "how long is life cycle of flea"


@pytest.fixture(scope="module")
def ranked(dl19):
    return dl19_ranked(dl19, QID, depth=12)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_cross_encoder_matches_sentence_transformers(tmp_path: Path, ranked, num_labels) -> None:
    from sentence_transformers import CrossEncoder

    path = save_tiny_bert_classifier(tmp_path / "ce", num_labels=num_labels)
    reranker = RERANKERS.create("cross-encoder", model=str(path), batch_size=5)
    out = reranker.rerank(ranked)
    ours = {h.doc.id: h.score for h in out.hits}

    reference = CrossEncoder(str(path), device="cpu")
    pairs = [(ranked.query.text, h.text) for h in ranked.hits]
    logits = reference.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=3)
    logits = np.asarray(logits).reshape(len(pairs), num_labels)
    expected = logits[:, 0] if num_labels == 1 else logits[:, 1] - logits[:, 0]
    for hit, value in zip(ranked.hits, expected, strict=True):
        assert ours[hit.doc.id] == pytest.approx(float(value), abs=1e-4)
    # the output is ordered by the new score and every candidate is there once
    assert [h.score for h in out.hits] == sorted((h.score for h in out.hits), reverse=True)
    assert sorted(out.ids()) == sorted(ranked.ids())
    report = out.reports[-1]
    assert report.stage == "rerank" and report.model_calls == 3 and report.tokens > 0


def test_cross_encoder_truncates_like_the_reference(tmp_path: Path, ranked) -> None:
    from sentence_transformers import CrossEncoder

    path = save_tiny_bert_classifier(tmp_path / "ce")
    reranker = RERANKERS.create("cross-encoder", model=str(path), max_length=24)
    out = reranker.rerank(ranked)
    report = out.reports[-1]
    # every DL19 passage is longer than 24 word pieces with its query
    assert report.extra["truncated"] == len(ranked)
    reference = CrossEncoder(str(path), device="cpu", max_length=24)
    pairs = [(ranked.query.text, h.text) for h in ranked.hits]
    expected = np.asarray(reference.predict(pairs, activation_fn=torch.nn.Identity())).ravel()
    ours = {h.doc.id: h.score for h in out.hits}
    got = np.array([ours[h.doc.id] for h in ranked.hits])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_cross_encoder_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="model="):
        RERANKERS.create("cross-encoder")


def _monot5_reference(path: Path, prompts: list[str]) -> np.ndarray:
    """log P(true) from transformers' own generate() scores of the first decoded token."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    true_id = tokenizer.encode("true", add_special_tokens=False)[0]
    false_id = tokenizer.encode("false", add_special_tokens=False)[0]
    out = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt")
        generated = model.generate(
            **inputs,
            max_new_tokens=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        logits = generated.logits[0][0]
        pair = torch.stack([logits[false_id], logits[true_id]])
        out.append(float(torch.log_softmax(pair, dim=0)[1]))
    return np.array(out)


def test_monot5_matches_transformers_generate(tmp_path: Path, ranked) -> None:
    path = save_tiny_t5(tmp_path / "t5", [ranked.query.text, *(h.text for h in ranked.hits)])
    reranker = RERANKERS.create("monot5", model=str(path), batch_size=4)
    out = reranker.rerank(ranked)
    prompts = [f"Query: {ranked.query.text} Document: {h.text} Relevant:" for h in ranked.hits]
    expected = _monot5_reference(path, prompts)
    ours = {h.doc.id: h.score for h in out.hits}
    got = np.array([ours[h.doc.id] for h in ranked.hits])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.all(got < 0)  # log-probabilities
    assert out.reports[-1].extra["truncated"] == 0


def test_monot5_cuts_long_passages_but_keeps_the_question(tmp_path: Path, ranked) -> None:
    path = save_tiny_t5(tmp_path / "t5", [ranked.query.text, *(h.text for h in ranked.hits)])
    reranker = RERANKERS.create("monot5", model=str(path), max_length=40)
    prompt, cut = reranker._fit(ranked.query.text, ranked.hits[0].text * 3)
    assert cut and prompt.endswith("Relevant:")
    assert len(reranker.tokenizer(prompt)["input_ids"]) <= 40
    out = reranker.rerank(ranked)
    assert out.reports[-1].extra["truncated"] == len(ranked)
    assert sorted(out.ids()) == sorted(ranked.ids())
