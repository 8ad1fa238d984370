"""Loaders for the evaluation datasets: BEIR, TREC qrels and runs, SQuAD-style QA, DL19, HotpotQA.

Every loader reads the files as published (see ../shared/data/README.md) with the
standard library only, and raises `IngestError` naming the file and line when one does
not have the expected shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, IngestError
from mmrag.eval.metrics import Qrels, Run, read_trec_run


def data_root() -> Path:
    """The evaluation data folder: $MMRAG_DATA, else the nearest shared/data above the cwd."""
    configured = os.environ.get("MMRAG_DATA")
    if configured:
        root = Path(configured).expanduser()
        if not root.is_dir():
            raise ConfigError(f"MMRAG_DATA={configured!r} is not a directory")
        return root
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"evaluation data not found: no shared/data in {cwd} or above it; set MMRAG_DATA"
    )


# --- JSON helpers -----------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise IngestError(str(path), f"cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise IngestError(str(path), f"not valid JSON: {exc}") from exc


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-empty line, streamed."""
    try:
        f = path.open(encoding="utf-8")
    except OSError as exc:
        raise IngestError(str(path), f"cannot read: {exc}") from exc
    with f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(str(path), f"line {number}: not valid JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise IngestError(str(path), f"line {number}: expected a JSON object")
            yield number, record


def _field(record: dict[str, Any], key: str, path: Path, where: str) -> Any:
    if key not in record:
        raise IngestError(str(path), f"{where}: missing field {key!r}")
    return record[key]


# --- TREC files -------------------------------------------------------------------


def load_trec_qrels(path: str | Path) -> Qrels:
    """TREC qrels (`qid iteration docid relevance`, whitespace separated)."""
    path = Path(path)
    qrels: Qrels = {}
    try:
        f = path.open(encoding="utf-8")
    except OSError as exc:
        raise IngestError(str(path), f"cannot read: {exc}") from exc
    with f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                raise IngestError(str(path), f"line {number}: expected 'qid 0 docid relevance'")
            qid, _, doc_id, grade = fields
            qrels.setdefault(qid, {})[doc_id] = _grade(grade, path, number)
    return qrels


def load_trec_run(path: str | Path) -> Run:
    """A TREC run file (`qid Q0 docid rank score tag`) as query -> doc -> score."""
    return read_trec_run(path)


def _grade(text: str, path: Path, number: int) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise IngestError(
            str(path), f"line {number}: relevance {text!r} is not an integer"
        ) from exc


# --- BEIR -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeirData:
    """A BEIR dataset split: the whole corpus, the queries judged in the split, the qrels."""

    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}, in file order
    queries: dict[str, str]  # query id -> text, only the queries with qrels in the split
    qrels: Qrels


def _load_beir_qrels(path: Path) -> Qrels:
    """BEIR qrels: tab-separated `query-id corpus-id score`, usually with a header line."""
    qrels: Qrels = {}
    try:
        f = path.open(encoding="utf-8")
    except OSError as exc:
        raise IngestError(str(path), f"cannot read: {exc}") from exc
    with f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n\r").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 3:
                raise IngestError(
                    str(path), f"line {number}: expected 'query-id\\tcorpus-id\\tscore'"
                )
            if number == 1 and not fields[2].lstrip("-").isdigit():
                continue  # the header
            qid, doc_id, grade = fields
            qrels.setdefault(qid, {})[doc_id] = _grade(grade, path, number)
    return qrels


def load_beir(directory: str | Path, split: str = "test") -> BeirData:
    """A BEIR folder: corpus.jsonl (`_id`, `title`, `text`), queries.jsonl, qrels/{split}.tsv."""
    directory = Path(directory)
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (directory / "qrels").glob("*.tsv"))
        raise IngestError(
            str(qrels_path), f"no qrels for split {split!r}; found: {', '.join(splits) or 'none'}"
        )
    qrels = _load_beir_qrels(qrels_path)

    corpus: dict[str, dict[str, str]] = {}
    corpus_path = directory / "corpus.jsonl"
    for number, record in _iter_jsonl(corpus_path):
        doc_id = str(_field(record, "_id", corpus_path, f"line {number}"))
        corpus[doc_id] = {
            "title": str(record.get("title") or ""),
            "text": str(_field(record, "text", corpus_path, f"line {number}")),
        }

    queries: dict[str, str] = {}
    queries_path = directory / "queries.jsonl"
    for number, record in _iter_jsonl(queries_path):
        qid = str(_field(record, "_id", queries_path, f"line {number}"))
        if qid in qrels:
            queries[qid] = str(_field(record, "text", queries_path, f"line {number}"))
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise IngestError(
            str(qrels_path),
            f"{len(missing)} judged queries are not in queries.jsonl, e.g. {missing[0]}",
        )
    return BeirData(corpus=corpus, queries=queries, qrels=qrels)


# --- SQuAD-format question answering as passage retrieval ------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A gold answer: its text and character offset in its paragraph (None if absent)."""

    text: str
    start: int | None

    @property
    def end(self) -> int | None:
        return None if self.start is None else self.start + len(self.text)


@dataclass(frozen=True, slots=True)
class SquadRetrieval:
    """SQuAD-style QA turned into retrieval: each question's own paragraph is its one relevant doc.

    Paragraph ids are f"{article index}-{paragraph index}" in the file, so they stay the
    same whatever subset is loaded.
    """

    paragraphs: dict[str, str]  # paragraph id -> context
    titles: dict[str, str]  # paragraph id -> its article's title
    questions: dict[str, str]  # question id -> question
    answers: dict[str, list[Answer]]  # question id -> gold answers (empty if unanswerable)
    qrels: Qrels  # question id -> {its paragraph id: 1}
    realigned: int = 0  # answers whose stated offset was wrong and was corrected

    def paragraph_of(self, question_id: str) -> str:
        return next(iter(self.qrels[question_id]))


def _utf16_to_index(text: str, utf16_offset: int) -> int | None:
    """The str index of a UTF-16 code unit offset (None if it falls inside a character)."""
    units = 0
    for index, char in enumerate(text):
        if units == utf16_offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text) if units == utf16_offset else None


def _align(context: str, text: str, stated: int) -> int | None:
    """Where `text` really starts in `context`, trusting the stated offset first.

    Some files were made with offsets in UTF-16 code units (CMRC 2018 has paragraphs with
    characters outside the BMP), which puts the offset one place too far per such
    character; failing that, the occurrence nearest the stated offset is taken.
    """
    if context.startswith(text, stated):
        return stated
    converted = _utf16_to_index(context, stated)
    if converted is not None and context.startswith(text, converted):
        return converted
    best: int | None = None
    found = context.find(text)
    while found != -1:
        if best is None or abs(found - stated) < abs(best - stated):
            best = found
        found = context.find(text, found + 1)
    return best


def _squad_paragraphs(
    articles: list[dict[str, Any]], path: Path
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(paragraph id, article title, paragraph) in file order."""
    for a_index, article in enumerate(articles):
        title = str(article.get("title") or "")
        for p_index, paragraph in enumerate(
            _field(article, "paragraphs", path, f"article {a_index}")
        ):
            yield f"{a_index}-{p_index}", title, paragraph


def load_squad_retrieval(
    path: str | Path, max_paragraphs: int | None = None, max_questions: int | None = None
) -> SquadRetrieval:
    """Any SQuAD-format JSON (SQuAD v1.1/v2.0, CMRC 2018) as a retrieval task.

    `max_paragraphs` keeps the first paragraphs in file order (the corpus) and the
    questions on them; `max_questions` then keeps the first questions, with the whole
    kept corpus still searched (the other paragraphs are distractors).
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise IngestError(str(path), "not SQuAD format: expected {'data': [articles]}")
    paragraphs: dict[str, str] = {}
    titles: dict[str, str] = {}
    questions: dict[str, str] = {}
    answers: dict[str, list[Answer]] = {}
    qrels: Qrels = {}
    realigned = 0
    for pid, title, paragraph in islice(_squad_paragraphs(data["data"], path), max_paragraphs):
        context = str(_field(paragraph, "context", path, f"paragraph {pid}"))
        paragraphs[pid] = context
        titles[pid] = title
        for q_index, qa in enumerate(paragraph.get("qas", [])):
            if max_questions is not None and len(questions) >= max_questions:
                break
            qid = str(qa.get("id") or f"{pid}-q{q_index}")
            if qid in questions:
                raise IngestError(str(path), f"question id {qid} appears twice")
            questions[qid] = str(_field(qa, "question", path, f"question {qid}"))
            qrels[qid] = {pid: 1}
            gold = []
            for answer in qa.get("answers", []):
                text = str(_field(answer, "text", path, f"question {qid}"))
                stated = int(_field(answer, "answer_start", path, f"question {qid}"))
                start = _align(context, text, stated)
                if start is not None and start != stated:
                    realigned += 1
                gold.append(Answer(text, start))
            answers[qid] = gold
    return SquadRetrieval(paragraphs, titles, questions, answers, qrels, realigned)


# --- TREC DL 2019 passage reranking ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One first-stage (BM25) candidate passage for a query."""

    doc_id: str
    text: str
    rank: int
    score: float


@dataclass(frozen=True, slots=True)
class Dl19Data:
    """TREC DL19 passage: each judged query with its BM25 top-100 passages, and the qrels."""

    queries: dict[str, str]  # query id -> text
    candidates: dict[str, list[Candidate]]  # query id -> candidates in BM25 rank order
    qrels: Qrels

    def bm25_run(self) -> Run:
        """The first-stage ranking as a run (its nDCG@10 is 0.5058)."""
        return {q: {c.doc_id: c.score for c in cands} for q, cands in self.candidates.items()}


def load_dl19(directory: str | Path) -> Dl19Data:
    """A folder with bm25_top100.json (`[{query, hits: [{qid, docid, rank, score, content}]}]`)
    and qrels.txt (TREC format)."""
    directory = Path(directory)
    path = directory / "bm25_top100.json"
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise IngestError(str(path), "expected a list of {query, hits}")
    queries: dict[str, str] = {}
    candidates: dict[str, list[Candidate]] = {}
    for index, entry in enumerate(entries):
        try:
            hits = entry["hits"]
            qids = {str(h["qid"]) for h in hits}
            if len(qids) != 1:
                raise ValueError(f"hits must share one qid, found {len(qids)}")
            qid = qids.pop()
            queries[qid] = str(entry["query"])
            candidates[qid] = [
                Candidate(str(h["docid"]), str(h["content"]), int(h["rank"]), float(h["score"]))
                for h in sorted(hits, key=lambda h: int(h["rank"]))
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise IngestError(str(path), f"entry {index}: unexpected layout ({exc!r})") from exc
    return Dl19Data(queries, candidates, load_trec_qrels(directory / "qrels.txt"))


# --- HotpotQA ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HotpotParagraph:
    """A Wikipedia paragraph as HotpotQA gives it: a title and its sentences."""

    title: str
    sentences: tuple[str, ...]
    gold: bool  # one of the two paragraphs the question was written from

    @property
    def text(self) -> str:
        # HotpotQA keeps the space before each sentence, so joining restores the paragraph.
        return "".join(self.sentences)


@dataclass(frozen=True, slots=True)
class HotpotQuestion:
    id: str
    question: str
    answer: str
    paragraphs: tuple[HotpotParagraph, ...]  # gold paragraphs first, then distractors
    supporting_facts: tuple[tuple[str, int], ...]  # (paragraph title, sentence index)

    def supporting_sentences(self) -> list[str]:
        by_title = {p.title: p for p in self.paragraphs}
        return [by_title[t].sentences[i] for t, i in self.supporting_facts]


def _hotpot_official(record: dict[str, Any]) -> tuple[list[HotpotParagraph], list[tuple[str, int]]]:
    """The official layout: context [[title, sentences]], supporting_facts [[title, index]]."""
    facts = [(str(t), int(i)) for t, i in record["supporting_facts"]]
    gold_titles = {t for t, _ in facts}
    paragraphs = [
        HotpotParagraph(str(t), tuple(map(str, s)), str(t) in gold_titles)
        for t, s in record["context"]
    ]
    paragraphs.sort(key=lambda p: not p.gold)  # stable: gold first, original order kept
    return paragraphs, facts


def _hotpot_sample(record: dict[str, Any]) -> tuple[list[HotpotParagraph], list[tuple[str, int]]]:
    """Our sample's layout: title_a/para_a, title_b/para_b, supporting_facts [[a indices],
    [b indices]], distractors [[title, sentences, retrieval score]]."""
    gold = [
        HotpotParagraph(str(record["title_a"]), tuple(map(str, record["para_a"])), True),
        HotpotParagraph(str(record["title_b"]), tuple(map(str, record["para_b"])), True),
    ]
    facts = [
        (p.title, int(i))
        for p, ids in zip(gold, record["supporting_facts"], strict=True)
        for i in ids
    ]
    distractors = [
        HotpotParagraph(str(d[0]), tuple(map(str, d[1])), False) for d in record["distractors"]
    ]
    return gold + distractors, facts


def load_hotpotqa(path: str | Path, max_questions: int | None = None) -> list[HotpotQuestion]:
    """HotpotQA questions with their paragraphs and supporting facts.

    Reads the official distractor-setting JSON and the layout of our 100-question sample
    (two gold paragraphs as para_a/para_b plus distractors); both give the same result.
    """
    path = Path(path)
    records = _read_json(path)
    if not isinstance(records, list):
        raise IngestError(str(path), "expected a list of questions")
    out: list[HotpotQuestion] = []
    for index, record in enumerate(records[:max_questions]):
        try:
            if "context" in record:
                paragraphs, facts = _hotpot_official(record)
            else:
                paragraphs, facts = _hotpot_sample(record)
            question = HotpotQuestion(
                id=str(record["_id"]),
                question=str(record["question"]),
                answer=str(record["answer"]),
                paragraphs=tuple(paragraphs),
                supporting_facts=tuple(facts),
            )
            question.supporting_sentences()  # every fact must point at a real sentence
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise IngestError(str(path), f"question {index}: unexpected layout ({exc!r})") from exc
        out.append(question)
    return out


__all__ = [
    "Answer",
    "BeirData",
    "Candidate",
    "Dl19Data",
    "HotpotParagraph",
    "HotpotQuestion",
    "SquadRetrieval",
    "data_root",
    "load_beir",
    "load_dl19",
    "load_hotpotqa",
    "load_squad_retrieval",
    "load_trec_qrels",
    "load_trec_run",
]
