"""Refiner evaluation: does the answer survive compression, and how fast is it?

Tasks built from real QA data (the benchmark and the `eval refine` command share them):
SQuAD / CMRC 2018 — each question's paragraph plus distractor paragraphs of the same
article, gold answer must survive intact; HotpotQA — all ten paragraphs, share of the
supporting-fact sentences kept.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.refine.base import Refiner
from mmrag.types import Document, Hit, Query, Ranked


@dataclass(frozen=True, slots=True)
class RefineSample:
    """One question with its candidate passages, in the order a retriever would hand them over."""

    id: str
    question: str
    passages: tuple[tuple[str, str], ...]  # (document id, text)
    answers: tuple[str, ...] = ()
    # HotpotQA: (passage index, start, end) of each supporting-fact sentence.
    supporting: tuple[tuple[int, int, int], ...] = ()

    def ranked(self) -> Ranked:
        hits = [
            Hit(doc=Document(id=pid, text=text, source_id=pid), score=1.0 / (rank + 1))
            for rank, (pid, text) in enumerate(self.passages)
        ]
        return Ranked(Query(text=self.question, id=self.id), hits)


def _spread(items: list[Any], n: int | None) -> list[Any]:
    """`n` items evenly spaced through the list, so a subset covers every article."""
    if n is None or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def squad_samples(
    path: str | Path, n: int | None = 200, distractors: int = 4, seed: int = 0
) -> list[RefineSample]:
    """SQuAD-format questions (SQuAD v1.1, CMRC 2018), each with its own paragraph and
    `distractors` other paragraphs of the same article; the gold paragraph is put at a
    seeded random position among them."""
    from mmrag.eval.datasets import load_squad_retrieval

    data = load_squad_retrieval(path)
    by_article: dict[str, list[str]] = {}
    for pid in data.paragraphs:
        by_article.setdefault(pid.split("-")[0], []).append(pid)
    rng = random.Random(seed)
    answerable = [q for q in data.questions if data.answers[q]]
    out = []
    for qid in _spread(answerable, n):
        gold = data.paragraph_of(qid)
        article = by_article[gold.split("-")[0]]
        others = [p for p in article if p != gold]
        chosen = rng.sample(others, min(distractors, len(others)))
        chosen.insert(rng.randint(0, len(chosen)), gold)
        out.append(
            RefineSample(
                id=qid,
                question=data.questions[qid],
                passages=tuple((p, data.paragraphs[p]) for p in chosen),
                answers=tuple(dict.fromkeys(a.text for a in data.answers[qid])),
            )
        )
    return out


def hotpot_samples(path: str | Path, n: int | None = None) -> list[RefineSample]:
    """HotpotQA questions with all their paragraphs (gold ones first, as loaded)."""
    from mmrag.eval.datasets import load_hotpotqa

    out = []
    for q in _spread(load_hotpotqa(path), n):
        passages = []
        where: dict[tuple[str, int], tuple[int, int, int]] = {}
        for p_index, paragraph in enumerate(q.paragraphs):
            offset = 0
            for s_index, sentence in enumerate(paragraph.sentences):
                where[(paragraph.title, s_index)] = (p_index, offset, offset + len(sentence))
                offset += len(sentence)
            passages.append((f"{q.id}-{p_index}", paragraph.text))
        supporting = tuple(where[f] for f in q.supporting_facts if f in where)
        out.append(RefineSample(q.id, q.question, tuple(passages), (q.answer,), supporting))
    return out


@dataclass(slots=True)
class RefineScore:
    answer_survival: float
    tokens_per_s: float
    achieved_rate: float
    questions: int
    tokens_in: int
    tokens_out: int
    seconds: float
    supporting_kept: float | None = None
    warnings: int = 0
    per_question: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, per_question: bool = False) -> dict[str, Any]:
        out = {
            "answer_survival": round(self.answer_survival, 4),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "achieved_rate": round(self.achieved_rate, 3),
            "questions": self.questions,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }
        if self.supporting_kept is not None:
            out["supporting_kept"] = round(self.supporting_kept, 4)
        if per_question:
            out["per_question"] = self.per_question
        return out


def answer_survives(context: str, answers: tuple[str, ...]) -> bool:
    """Some gold answer appears intact (exact substring) in the refined context."""
    return any(a and a in context for a in answers)


def _supporting_kept(sample: RefineSample, refined: Ranked) -> list[bool]:
    """Per supporting sentence: are at least half of its characters in kept spans?"""
    kept_by_doc: dict[str, list[tuple[int, int]]] = {}
    for hit in refined.hits:
        kept_by_doc.setdefault(hit.doc.id, []).extend((s.start or 0, s.end or 0) for s in hit.kept)
    out = []
    for p_index, a, b in sample.supporting:
        mask = np.zeros(b - a, dtype=bool)
        for s, e in kept_by_doc.get(sample.passages[p_index][0], []):
            lo, hi = max(s, a), min(e, b)
            if lo < hi:
                mask[lo - a : hi - a] = True
        out.append(bool(mask.mean() >= 0.5) if len(mask) else False)
    return out


def evaluate_refiner(
    refiner: Refiner,
    samples: list[RefineSample],
    rate: float | None = None,
    budget_tokens: int | None = None,
) -> RefineScore:
    """Refine every sample; answer survival, supporting facts kept, speed and achieved rate."""
    if not samples:
        raise ConfigError("no samples to evaluate")
    survived = 0
    tokens_in = tokens_out = warnings = 0
    supporting: list[bool] = []
    per_question = []
    seconds = 0.0
    for sample in samples:
        ranked = sample.ranked()
        start = time.perf_counter()
        refined = refiner.refine(ranked, budget_tokens=budget_tokens, rate=rate)
        seconds += time.perf_counter() - start
        report = refined.reports[-1]
        context = "\n".join(h.text for h in refined.hits)
        ok = answer_survives(context, sample.answers)
        survived += ok
        tokens_in += report.extra["tokens_in"]
        tokens_out += report.extra["tokens_out"]
        warnings += len(report.errors)
        if sample.supporting:
            supporting.extend(_supporting_kept(sample, refined))
        per_question.append(
            {
                "id": sample.id,
                "survived": ok,
                "tokens_in": report.extra["tokens_in"],
                "tokens_out": report.extra["tokens_out"],
            }
        )
    return RefineScore(
        answer_survival=survived / len(samples),
        tokens_per_s=tokens_in / max(seconds, 1e-9),
        achieved_rate=tokens_in / max(tokens_out, 1),
        questions=len(samples),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        seconds=seconds,
        supporting_kept=(sum(supporting) / len(supporting)) if supporting else None,
        warnings=warnings,
        per_question=per_question,
    )
