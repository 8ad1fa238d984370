"""End-to-end question answering: ask a dataset's questions through the whole pipeline.

Open corpus: every paragraph of the file is indexed (one source each, so a citation
names its paragraph), not the question's own paragraph alone; the store is built once
and cached per dataset, content and encoder (`runner.cached_store`). Each question is
asked twice: of that store, scored with the dataset's official EM/F1 (`qa_metrics`),
and of a second store that lacks the gold paragraphs of every selected question, where
the right behaviour is to say "not found".
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.eval.qa_metrics import SCORERS, AnswerScorer, strip_citation_markers
from mmrag.eval.runner import Corpus, cached_store
from mmrag.generate.base import Answer
from mmrag.models.text import TextEncoder, load_text_encoder
from mmrag.progress import progress

DATASETS = ("squad", "hotpotqa", "cmrc2018")
METRIC_NAMES = {
    "squad": "SQuAD v1.1 EM/F1 (evaluate-v1.1.py)",
    "hotpotqa": "HotpotQA answer EM/F1 (hotpot_evaluate_v1.py: SQuAD's, yes/no exact)",
    "cmrc2018": "CMRC 2018 EM/F1 (cmrc2018_evaluate.py: segment-level longest common run)",
}
# Answers that do not try to answer: no model ran, nothing was retrieved, or it refused.
_NOT_ANSWERS = {"no_generator", "no_context", "not_found"}
_YES_NO = {"yes", "no"}


@dataclass(frozen=True, slots=True)
class QAQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # gold answer strings, duplicates removed
    gold: tuple[str, ...]  # ids of the paragraphs the question was written from


@dataclass(frozen=True, slots=True)
class QATask:
    """A dataset as an open corpus: all its paragraphs and its answerable questions."""

    dataset: str
    path: Path
    paragraphs: dict[str, str]  # paragraph id -> text, file order
    titles: dict[str, str]
    questions: list[QAQuestion]  # file order

    def corpus(self, without: Iterable[str] = ()) -> Corpus:
        dropped = set(without)
        texts = {p: t for p, t in self.paragraphs.items() if p not in dropped}
        return Corpus(texts=texts, titles={p: self.titles[p] for p in texts})


# ---- loading ---------------------------------------------------------------------


def _squad_task(dataset: str, path: Path) -> QATask:
    from mmrag.eval.datasets import load_squad_retrieval

    data = load_squad_retrieval(path)
    questions = [
        QAQuestion(
            qid,
            data.questions[qid],
            tuple(dict.fromkeys(a.text for a in data.answers[qid])),
            (data.paragraph_of(qid),),
        )
        for qid in data.questions
        if data.answers[qid] and data.questions[qid].strip()  # v2.0 unanswerables left out
    ]
    # SQuAD titles are page names ("Super_Bowl_50"); they lead each passage, as on the page.
    titles = {p: t.replace("_", " ") for p, t in data.titles.items()}
    return QATask(dataset, path, dict(data.paragraphs), titles, questions)


def _hotpot_task(path: Path) -> QATask:
    """All paragraphs of all questions, once each (many recur as another's distractor).

    A paragraph's id is its Wikipedia title; a second, different text under the same
    title would get "title #2".
    """
    from mmrag.eval.datasets import load_hotpotqa

    ids: dict[tuple[str, str], str] = {}
    paragraphs: dict[str, str] = {}
    titles: dict[str, str] = {}
    questions = []
    for q in load_hotpotqa(path):
        gold = []
        for p in q.paragraphs:
            key = (p.title, p.text)
            if key not in ids:
                pid = p.title if p.title not in paragraphs else f"{p.title} #{len(ids)}"
                ids[key] = pid
                paragraphs[pid] = p.text.strip()
                titles[pid] = p.title
            if p.gold:
                gold.append(ids[key])
        if q.question.strip():
            questions.append(QAQuestion(q.id, q.question, (q.answer,), tuple(gold)))
    return QATask("hotpotqa", path, paragraphs, titles, questions)


def load_task(dataset: str, path: str | Path) -> QATask:
    """The dataset's file (`path` itself, or the usual file in the folder `path`)."""
    from mmrag.eval.refine_run import dataset_file  # the one table of default file names

    if dataset not in DATASETS:
        raise ConfigError(f"unknown QA dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    file = dataset_file(dataset, Path(path))
    task = _hotpot_task(file) if dataset == "hotpotqa" else _squad_task(dataset, file)
    if not task.questions:
        raise ConfigError(f"{file} holds no answerable questions")
    return task


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """`n` items evenly spaced over the whole sequence (item floor(i * len / n)), all if fewer."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


# ---- scoring one answer ----------------------------------------------------------


def cited_sources(answer: Answer) -> list[str]:
    """Source ids of the passages the answer cites, in citation order, once each."""
    return list(dict.fromkeys(c.doc.group for c in answer.citations))


def is_answer(answer: Answer) -> bool:
    """The pipeline produced an attempt at an answer (text, not a refusal or a no-op)."""
    return answer.finish_reason not in _NOT_ANSWERS and bool(
        strip_citation_markers(answer.text).strip()
    )


def gold_is_span(question: QAQuestion) -> bool:
    """HotpotQA's yes/no answers are not strings a passage could contain."""
    return not all(a.strip().lower() in _YES_NO for a in question.answers)


def answer_in_cited(answer: Answer, question: QAQuestion, scorer: AnswerScorer) -> bool:
    """A gold answer occurs, normalised, in at least one passage the answer cites.

    The passage is the text the generator read (`hit.text`: refined if a refiner ran).
    """
    return scorer.found_in([c.hit.text for c in answer.citations], question.answers)


def _generate_extra(answer: Answer, key: str) -> float | None:
    for stage in answer.stages:
        if stage.stage == "generate" and stage.extra.get(key) is not None:
            return float(stage.extra[key])
    return None


def score_answer(
    question: QAQuestion,
    answer: Answer | None,
    scorer: AnswerScorer,
    seconds: float,
    error: str | None = None,
) -> dict[str, Any]:
    """The per-question record; a failed ask (`answer` None) scores 0 and keeps its error."""
    record: dict[str, Any] = {
        "id": question.id,
        "question": question.question,
        "gold": list(question.answers),
        "gold_paragraphs": list(question.gold),
        "answer": None,
        "finish_reason": None,
        "not_found": False,
        "retrieved": [],
        "gold_retrieved": False,
        "cited": [],
        "em": 0.0,
        "f1": 0.0,
        "answered": False,
        "answer_in_cited_passage": None,
        "sentences": 0,
        "supported_sentences": None,
        "seconds": round(seconds, 3),
        "tokens_per_s": None,
        "first_token_s": None,
        "error": error,
    }
    if answer is None:
        return record
    em, f1 = scorer.score(answer.text, question.answers)
    retrieved = list(dict.fromkeys(h.doc.group for h in answer.context))
    answered = is_answer(answer)
    grounding = answer.grounding()
    record.update(
        answer=answer.text,
        finish_reason=answer.finish_reason,
        not_found=answer.not_found,
        retrieved=retrieved,
        gold_retrieved=any(g in retrieved for g in question.gold),
        cited=cited_sources(answer),
        em=em,
        f1=round(f1, 4),
        answered=answered,
        answer_in_cited_passage=(
            answer_in_cited(answer, question, scorer)
            if answered and gold_is_span(question)
            else None
        ),
        sentences=grounding["sentences"],
        supported_sentences=grounding["supported"] if grounding["verified"] else None,
        tokens_per_s=_generate_extra(answer, "tokens_per_s"),
        first_token_s=_generate_extra(answer, "first_token_s"),
    )
    return record


# ---- aggregating -----------------------------------------------------------------


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Dataset-level metrics from per-question records, each with its denominator."""
    n = len(records)
    answered = [r for r in records if r["answered"]]
    judged = [r for r in answered if r["answer_in_cited_passage"] is not None]
    verified = [r for r in records if r["supported_sentences"] is not None]
    sentences = sum(r["sentences"] for r in verified)
    speeds = [r["tokens_per_s"] for r in records if r["tokens_per_s"] is not None]
    firsts = [r["first_token_s"] for r in records if r["first_token_s"] is not None]
    seconds = [r["seconds"] for r in records]
    return {
        "em": round(sum(r["em"] for r in records) / n, 4) if n else None,
        "f1": round(sum(r["f1"] for r in records) / n, 4) if n else None,
        "answer_in_cited_passage": _share(
            sum(1 for r in judged if r["answer_in_cited_passage"]), len(judged)
        ),
        "cited_share": _share(sum(1 for r in answered if r["cited"]), len(answered)),
        "supported_sentence_share": _share(
            sum(r["supported_sentences"] for r in verified), sentences
        ),
        "gold_retrieved_share": _share(sum(1 for r in records if r["gold_retrieved"]), n),
        "seconds_p50": _percentile(seconds, 50),
        "seconds_p95": _percentile(seconds, 95),
        "tokens_per_s": _percentile(speeds, 50),
        "first_token_s_p50": _percentile(firsts, 50),
        "counts": {
            "questions": n,
            "failed": sum(1 for r in records if r["error"] is not None),
            "answered": len(answered),
            "answered_with_span_gold": len(judged),
            "answered_with_citation": sum(1 for r in answered if r["cited"]),
            "verified_answers": len(verified),
            "sentences_of_verified_answers": sentences,
            "with_generate_timing": len(speeds),
        },
        "finish_reasons": dict(Counter(str(r["finish_reason"]) for r in records)),
    }


def refusal_share(records: Sequence[dict[str, Any]]) -> float | None:
    """Share of asks answered "not found"; None when no answer came from a generator."""
    if all(r["finish_reason"] == "no_generator" for r in records):
        return None
    return _share(sum(1 for r in records if r["not_found"]), len(records))


DEFINITIONS = {
    "em, f1": "mean over all asked questions; a failed question scores 0; citation "
    "markers [n] are removed from the answer first; maximum over the gold answers",
    "answer_in_cited_passage": "over answered questions (counts.answered: not failed, "
    "finish_reason not no_generator/no_context/not_found, non-empty text) whose gold "
    "answer is a span (HotpotQA yes/no left out): share where a gold answer occurs, "
    "normalised as the dataset's metric normalises, in a passage the answer cites; "
    "an answer without citations counts as 0; null when there is no such question",
    "cited_share": "over answered questions: share with at least one citation",
    "supported_sentence_share": "over all sentences of answers the verifier judged "
    "(Answer.sentences with some supported not None): share with supported True; "
    "null when no answer was verified",
    "gold_retrieved_share": "over all questions: a gold paragraph is in the context",
    "refusal_when_absent": "over all asked questions, asked of the absent store: share "
    "answered not found (Answer.not_found); failed asks count as not refusing; null "
    "when the pipeline has no generator",
    "absent_answer_elsewhere": "over all asked questions: share whose gold answer still "
    "occurs (normalised) in a paragraph of the absent store, so 'not found' is not "
    "necessarily right for them",
    "seconds_p50, seconds_p95": "wall time per pipeline.ask on the open-corpus store",
    "tokens_per_s, first_token_s_p50": "median over answers of the generate stage's "
    "extra tokens_per_s (decoding: tokens after the first over the time after the first) "
    "and first_token_s (retrieval to first token: mostly reading the prompt); null "
    "without a generator",
}


# ---- running ---------------------------------------------------------------------


def default_cache() -> Path:
    """Where evaluation stores are cached (as for the other `mmrag eval` commands)."""
    return Path(os.environ.get("MMRAG_CACHE", ".mmrag-cache")) / "eval-stores"


def index_default_encoder() -> TextEncoder:
    """The encoder `mmrag index` uses when given no --encoder/--model.

    Read from the command's signature when called, so that a change of that default
    reaches this evaluation without a second copy of it here.
    """
    from mmrag import cli

    params = inspect.signature(cli.index).parameters
    kind = params["encoder"].default if "encoder" in params else None
    model = params["model"].default if "model" in params else None
    name = [kind] if isinstance(kind, str) else []  # none: load_text_encoder's own default
    return load_text_encoder(*name, **({"model": model} if isinstance(model, str) else {}))


def dataset_encoder(dataset: str) -> TextEncoder:
    """Chinese needs the multilingual encoder; English takes the index command's default."""
    if dataset == "cmrc2018":
        return load_text_encoder("use-multilingual")
    return index_default_encoder()


def read_pipeline_config(path: str | Path | None) -> dict[str, Any]:
    """The pipeline config as a dict (the library default for None), validated early."""
    from mmrag.pipeline import DEFAULT_CONFIG, parse_config

    if path is None:
        return json.loads(json.dumps(DEFAULT_CONFIG))  # a copy the caller may keep
    file = Path(path)
    try:
        config = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {file}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
    parse_config(config)
    return config


def _store_name(task: QATask, corpus: Corpus, part: str) -> str:
    # cached_store keys on the name and the corpus size only, so the name carries the content.
    digest = hashlib.sha256(
        json.dumps(sorted(corpus.texts.items()), ensure_ascii=False).encode()
    ).hexdigest()[:10]
    return f"qa-{task.dataset}-{part}-{digest}"


def _ask_all(
    config: dict[str, Any],
    store: Any,
    questions: Sequence[QAQuestion],
    scorer: AnswerScorer,
    bar: Any,
    label: str,
    absent: bool,
) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    from mmrag.pipeline import Pipeline, StageFailed

    pipeline = Pipeline.from_config(config, store)
    task = bar.add_task(label, total=len(questions))
    records = []
    f1_sum, refused = 0.0, 0
    for q in questions:
        started = time.perf_counter()
        try:
            answer, error = pipeline.ask(q.question), None
        except StageFailed as exc:  # counts as wrong, listed with its error
            answer, error = None, str(exc)
        record = score_answer(q, answer, scorer, time.perf_counter() - started, error)
        records.append(record)
        f1_sum += record["f1"]
        refused += record["not_found"]
        running = (
            f"not found {refused}/{len(records)}" if absent else f"F1 {f1_sum / len(records):.3f}"
        )
        bar.update(task, advance=1, description=f"{label} · {running}")
    # the stages this run configured (a generator that failed to load is not among them)
    names = {s: n for s, n in pipeline.names.items() if s == "retrieve" or s in config}
    # e.g. a generator that could not load: the run is then retrieval-only, and says so
    return records, names, list(getattr(pipeline, "warnings", []))


def _absent_record(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("answer", "finish_reason", "not_found", "retrieved", "cited", "seconds", "error")
    return {k: record[k] for k in keys}


def eval_qa(
    dataset: str,
    path: str | Path,
    *,
    pipeline: str | Path | None = None,
    questions: int = 200,
    cache: Path | None = None,
    encoder: TextEncoder | None = None,
    absent: bool = True,
    show: bool = True,
) -> dict[str, Any]:
    """EM/F1, citation and refusal metrics of a pipeline on `questions` questions of a dataset.

    `pipeline` is a TOML file (None: the library default); `encoder` overrides the
    store's text encoder; `absent=False` skips the second store and `refusal_when_absent`.
    """
    if questions < 1:
        raise ConfigError(f"questions must be at least 1, got {questions}")
    config = read_pipeline_config(pipeline)
    task = load_task(dataset, path)
    scorer = SCORERS[dataset]
    chosen = spread(task.questions, questions)
    order = {p: i for i, p in enumerate(task.paragraphs)}
    gold = sorted({p for q in chosen for p in q.gold}, key=order.__getitem__)
    cache = cache or default_cache()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    enc = encoder or dataset_encoder(dataset)

    open_corpus = task.corpus()
    stores: dict[str, Any] = {}
    with (
        cached_store(cache, _store_name(task, open_corpus, "open"), open_corpus, enc, show) as st,
        progress(show) as bar,
    ):
        records, names, warnings = _ask_all(
            config, st, chosen, scorer, bar, f"{dataset} open", False
        )
        stores["open"] = {"path": str(st.path.resolve()), "paragraphs": st.count_sources()}

    result: dict[str, Any] = {
        "task": "qa",
        "dataset": dataset,
        "file": str(task.path),
        "metric": METRIC_NAMES[dataset],
        "n_questions": len(chosen),
        "questions_available": len(task.questions),
        "selection": "answerable questions in file order, item floor(i * available / n) "
        "for i < n: spread evenly over the whole file, deterministic",
    }
    result.update(summarise(records))

    absent_records: list[dict[str, Any]] = []
    refusal = None
    if absent:
        absent_corpus = task.corpus(without=gold)
        name = _store_name(task, absent_corpus, "absent")
        with (
            cached_store(cache, name, absent_corpus, enc, show) as st,
            progress(show) as bar,
        ):
            absent_records, _, _ = _ask_all(
                config, st, chosen, scorer, bar, f"{dataset} gold removed", True
            )
            stores["absent"] = {
                "path": str(st.path.resolve()),
                "paragraphs": st.count_sources(),
                "removed": gold,
                "note": "one store for the whole run: every paragraph of the file except "
                "the gold paragraphs of all selected questions",
            }
        refusal = refusal_share(absent_records)
        remaining = list(absent_corpus.texts.values())
        elsewhere = sum(1 for q in chosen if scorer.found_in(remaining, q.answers))
        result["absent_answer_elsewhere"] = _share(elsewhere, len(chosen))
        result["absent_counts"] = {
            "questions": len(absent_records),
            "not_found": sum(1 for r in absent_records if r["not_found"]),
            "failed": sum(1 for r in absent_records if r["error"] is not None),
            "answer_elsewhere": elsewhere,
            "seconds_p50": _percentile([r["seconds"] for r in absent_records], 50),
        }
        result["absent_finish_reasons"] = dict(
            Counter(str(r["finish_reason"]) for r in absent_records)
        )
    result["refusal_when_absent"] = refusal
    result["failures"] = [
        {"id": r["id"], "store": "open", "error": r["error"]} for r in records if r["error"]
    ] + [
        {"id": q.id, "store": "absent", "error": r["error"]}
        for q, r in zip(chosen, absent_records, strict=False)
        if r["error"]
    ]
    result["definitions"] = DEFINITIONS
    result["config"] = {
        "pipeline_file": str(pipeline) if pipeline is not None else None,
        "pipeline": config,
        "stages": names,
        "warnings": warnings,
        "encoder": enc.info(),
    }
    result["stores"] = stores
    result["machine"] = {
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    result["started"] = started
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    result["seconds_total"] = round(time.perf_counter() - t0, 1)
    for record, other in zip(records, absent_records, strict=False):
        record["absent"] = _absent_record(other)
    result["questions"] = records
    return result
