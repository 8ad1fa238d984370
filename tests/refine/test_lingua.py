"""LongLLMLingua-style refiner and its batched scorer, with the real packaged SmolLM2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.eval.refine import answer_survives, squad_samples
from mmrag.refine.base import MIN_CONTEXT_TOKENS
from mmrag.refine.lingua import LinguaRefiner
from mmrag.refine.sentences import word_spans
from mmrag.types import Document, Hit, Query, Ranked


@pytest.fixture(scope="module")
def lingua() -> LinguaRefiner:
    return LinguaRefiner()


@pytest.fixture(scope="module")
def squad(data_dir: Path) -> list:
    return squad_samples(data_dir / "squad" / "dev-v1.1.json", n=200)


def test_batched_scores_match_the_models_own_loss(lingua: LinguaRefiner, squad: list) -> None:
    import torch

    scorer = lingua.scorer
    texts = [squad[0].passages[0][1], "A short one.", squad[5].passages[2][1][:200]]
    encoded = scorer.encode(texts)
    batched = scorer.logprobs([[e.ids] for e in encoded])  # padded into one batch
    for enc, (lp,) in zip(encoded, batched, strict=True):
        ids = torch.tensor([[scorer._start_id, *enc.ids.tolist()]])
        with torch.inference_mode():
            loss = scorer.lm.model(input_ids=ids, labels=ids).loss.item()  # mean NLL, HF's own
        assert len(lp) == len(enc)
        assert abs(-lp.mean() - loss) < 2e-3
    # Segments: [a, b] scores b's tokens given a; the split does not change the numbers.
    a, b = encoded[1].ids, encoded[0].ids
    (joined,) = scorer.logprobs([[np.concatenate([a, b])]])[0:1]
    split = scorer.logprobs([[a, b]])[0]
    assert np.allclose(np.concatenate(split), joined[0], atol=1e-3)


def test_squad_at_4x_keeps_answers_and_budget(lingua: LinguaRefiner, squad: list) -> None:
    survived = 0
    for sample in squad[:3]:
        ranked = sample.ranked()
        out = lingua.refine(ranked, rate=4.0)
        report = out.reports[-1]
        assert report.extra["tokens_out"] <= report.extra["target_tokens"] * 1.05 + 2
        assert report.extra["achieved_rate"] >= 3.6
        assert report.model_calls == 2  # two batched passes, whatever the passage count
        assert len(report.extra["coarse_scores"]) == len(ranked.hits)
        assert set(report.extra["dropped"]) == {h.doc.id for h in ranked.hits} - set(out.ids())
        for hit in out.hits:
            for span in hit.kept:
                assert hit.doc.text[span.start : span.end] in hit.passage
        survived += answer_survives("\n".join(h.text for h in out.hits), sample.answers)
    assert survived >= 2


def test_chinese_is_pruned_by_whole_words(lingua: LinguaRefiner, data_dir: Path) -> None:
    samples = squad_samples(data_dir / "cmrc2018" / "trial.json", n=50)
    for sample in samples[:2]:
        ranked = sample.ranked()
        out = lingua.refine(ranked, rate=3.0)
        assert out.hits
        for hit in out.hits:
            assert "\ufffd" not in hit.passage
            bounds = word_spans(hit.doc.text)
            starts, ends = set(bounds[:, 0].tolist()), set(bounds[:, 1].tolist())
            for span in hit.kept:
                assert span.start in starts and span.end in ends  # never half a word


def test_passage_longer_than_the_window_and_tiny_budget(squad: list) -> None:
    small = LinguaRefiner(window=96, segment_tokens=64)
    sample = squad[7]
    long_text = " ".join(text for _, text in sample.passages)
    query = Query(sample.question)
    ranked = Ranked(query, [Hit(Document("long", long_text), 1.0)])
    out = small.refine(ranked, rate=4.0)
    report = out.reports[-1]
    assert any("LM window" in e for e in report.errors)
    assert out.hits and report.extra["tokens_out"] <= report.extra["target_tokens"] * 1.05 + 2
    tiny = small.refine(ranked, budget_tokens=4)
    assert any("budget of 4 tokens" in e for e in tiny.reports[-1].errors)
    assert tiny.hits and tiny.reports[-1].extra["tokens_out"] <= MIN_CONTEXT_TOKENS + 2


def test_lingua_fast_reads_only_the_kept_passages_once(squad: list) -> None:
    from mmrag.refine import REFINERS

    fast = REFINERS.create("lingua-fast")
    survived = 0
    for sample in squad[:6]:
        ranked = sample.ranked()
        out = fast.refine(ranked, rate=4.0)
        report = out.reports[-1]
        assert report.extra["achieved_rate"] >= 3.6
        assert report.extra["passages_after_coarse"] < len(ranked.hits)
        assert report.model_calls == 1  # one batched pass over what the encoder kept
        for hit in out.hits:
            for span in hit.kept:
                assert hit.doc.text[span.start : span.end] in hit.passage
        survived += answer_survives("\n".join(h.text for h in out.hits), sample.answers)
    assert survived >= 4  # 0.92 over 24 questions in bench/refine.py
