"""Each loader on the real file: counts as in shared/data/README.md, ids and offsets agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.errors import ConfigError, IngestError
from mmrag.eval.datasets import (
    SquadRetrieval,
    data_root,
    load_beir,
    load_dl19,
    load_hotpotqa,
    load_squad_retrieval,
    load_trec_qrels,
    load_trec_run,
)
from mmrag.eval.metrics import write_trec_run

HOTPOT = "hotpotqa/dev_distractor_sample100.json"


def test_data_root_prefers_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRAG_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.setenv("MMRAG_DATA", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="MMRAG_DATA"):
        data_root()


def test_data_root_walks_up_from_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMRAG_DATA", raising=False)
    data = tmp_path / "work" / "shared" / "data"
    data.mkdir(parents=True)
    project = tmp_path / "work" / "main" / "src"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    assert data_root() == data.resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    if any((p / "shared" / "data").is_dir() for p in outside.resolve().parents):
        return  # this machine keeps a shared/data above the temp folder; nothing to refuse
    with pytest.raises(ConfigError, match="set MMRAG_DATA"):
        data_root()


def test_beir_scifact(data_dir: Path) -> None:
    data = load_beir(data_dir / "scifact")
    assert len(data.corpus) == 5183
    assert len(data.queries) == 300 and set(data.queries) == set(data.qrels)
    assert sum(len(docs) for docs in data.qrels.values()) == 339
    first = json.loads((data_dir / "scifact" / "corpus.jsonl").open().readline())
    assert next(iter(data.corpus)) == first["_id"]  # file order kept
    assert data.corpus[first["_id"]] == {"title": first["title"], "text": first["text"]}
    assert all(d in data.corpus for docs in data.qrels.values() for d in docs)
    assert data.qrels["1"] == {"31715818": 1}  # the first line after the header
    assert data.queries["1"] == "0-dimensional biomaterials show inductive properties."


def test_beir_unknown_split_names_the_available_ones(data_dir: Path) -> None:
    with pytest.raises(IngestError, match="found: test"):
        load_beir(data_dir / "scifact", split="train")


def test_beir_qrels_without_header(data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / "scifact"
    for name in ("corpus.jsonl", "queries.jsonl"):
        (tmp_path / name).symlink_to(source / name)
    (tmp_path / "qrels").mkdir()
    lines = (source / "qrels" / "test.tsv").read_text().splitlines()
    (tmp_path / "qrels" / "dev.tsv").write_text("\n".join(lines[1:11]) + "\n")
    data = load_beir(tmp_path, split="dev")
    assert sum(len(docs) for docs in data.qrels.values()) == 10
    assert set(data.queries) == set(data.qrels)


def test_dl19(data_dir: Path) -> None:
    data = load_dl19(data_dir / "trec-dl19")
    assert len(data.queries) == 43 and set(data.queries) == set(data.qrels)
    assert sum(len(docs) for docs in data.qrels.values()) == 9260
    assert load_trec_qrels(data_dir / "trec-dl19" / "qrels.txt") == data.qrels
    grades = {g for docs in data.qrels.values() for g in docs.values()}
    assert grades == {0, 1, 2, 3}
    for candidates in data.candidates.values():
        assert [c.rank for c in candidates] == list(range(1, 101))
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True)
        assert all(c.text.strip() for c in candidates)
    raw = json.loads((data_dir / "trec-dl19" / "bm25_top100.json").read_text())
    assert data.queries[str(raw[0]["hits"][0]["qid"])] == raw[0]["query"]


def test_trec_run_loader_reads_what_the_writer_wrote(data_dir: Path, tmp_path: Path) -> None:
    run = load_dl19(data_dir / "trec-dl19").bm25_run()
    write_trec_run(run, tmp_path / "r.txt")
    assert load_trec_run(tmp_path / "r.txt") == run


def _raw_answer_starts(path: Path) -> dict[str, list[int]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        qa["id"]: [a["answer_start"] for a in qa["answers"]]
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def _assert_answers_at_offsets(data: SquadRetrieval) -> int:
    n = 0
    for qid, answers in data.answers.items():
        context = data.paragraphs[data.paragraph_of(qid)]
        for answer in answers:
            assert answer.start is not None
            assert context[answer.start : answer.end] == answer.text
            n += 1
    return n


def test_squad(data_dir: Path) -> None:
    data = load_squad_retrieval(data_dir / "squad" / "dev-v1.1.json")
    assert len(data.paragraphs) == 2067 and len(data.questions) == 10570
    assert data.qrels.keys() == data.questions.keys() == data.answers.keys()
    assert all(len(docs) == 1 and set(docs.values()) == {1} for docs in data.qrels.values())
    assert data.realigned == 0
    assert _assert_answers_at_offsets(data) == 34726
    raw = _raw_answer_starts(data_dir / "squad" / "dev-v1.1.json")
    assert {q: [a.start for a in ans] for q, ans in data.answers.items()} == raw
    assert data.paragraph_of("5725b33f6a3fe71400b8952d") == "0-0"
    assert data.titles["0-0"] == "1973_oil_crisis"


def test_squad_subsets_keep_ids(data_dir: Path) -> None:
    path = data_dir / "squad" / "dev-v1.1.json"
    full = load_squad_retrieval(path)
    small = load_squad_retrieval(path, max_paragraphs=30)
    assert list(small.paragraphs) == list(full.paragraphs)[:30]
    assert all(full.qrels[q] == docs for q, docs in small.qrels.items())
    assert set(small.qrels) == {
        q for q, docs in full.qrels.items() if set(docs) <= set(small.paragraphs)
    }
    few = load_squad_retrieval(path, max_paragraphs=30, max_questions=25)
    assert list(few.questions) == list(small.questions)[:25]
    assert few.paragraphs == small.paragraphs  # the rest of the corpus stays as distractors


def test_cmrc2018(data_dir: Path) -> None:
    path = data_dir / "cmrc2018" / "trial.json"
    data = load_squad_retrieval(path)
    assert len(data.paragraphs) == 256 and len(data.questions) == 1002
    assert _assert_answers_at_offsets(data) == 1002
    # Five answers share one paragraph with a character outside the BMP (U+2B6AD); their
    # stated offsets count UTF-16 code units, one too many after that character.
    raw = _raw_answer_starts(path)
    moved = {q: ans for q, ans in data.answers.items() if [a.start for a in ans] != raw[q]}
    assert data.realigned == len(moved) == 5
    for qid, answers in moved.items():
        context = data.paragraphs[data.paragraph_of(qid)]
        for answer, stated in zip(answers, raw[qid], strict=True):
            assert answer.start is not None
            assert len(context[: answer.start].encode("utf-16-le")) // 2 == stated


def test_hotpotqa(data_dir: Path) -> None:
    questions = load_hotpotqa(data_dir / HOTPOT)
    assert len(questions) == 100 and len({q.id for q in questions}) == 100
    for q in questions:
        gold = [p for p in q.paragraphs if p.gold]
        assert len(gold) == 2 and q.paragraphs[:2] == tuple(gold)
        assert {t for t, _ in q.supporting_facts} == {p.title for p in gold}
        assert len(q.supporting_sentences()) == len(q.supporting_facts)
        gold_text = " ".join(p.text for p in gold)
        assert q.answer in ("yes", "no") or q.answer in gold_text
    distractors = [sum(not p.gold for p in q.paragraphs) for q in questions]
    assert distractors.count(8) == 97
    assert len(load_hotpotqa(data_dir / HOTPOT, max_questions=5)) == 5


def test_hotpotqa_official_layout_gives_the_same_questions(data_dir: Path, tmp_path: Path) -> None:
    sample = json.loads((data_dir / HOTPOT).read_text(encoding="utf-8"))[:20]
    official = []
    for r in sample:
        gold = [[r["title_a"], r["para_a"]], [r["title_b"], r["para_b"]]]
        context = [[d[0], d[1]] for d in r["distractors"]]
        context[3:3] = gold  # official files mix gold paragraphs among the distractors
        facts = [
            [t, i] for (t, _), ids in zip(gold, r["supporting_facts"], strict=True) for i in ids
        ]
        official.append(
            {"_id": r["_id"], "question": r["question"], "answer": r["answer"],
             "supporting_facts": facts, "context": context, "type": "bridge", "level": "hard"}
        )  # fmt: skip
    path = tmp_path / "official.json"
    path.write_text(json.dumps(official))
    assert load_hotpotqa(path) == load_hotpotqa(data_dir / HOTPOT, max_questions=20)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("qrels.txt", "q1 0 d1\n"),
        ("qrels.txt", "q1 0 d1 high\n"),
        ("squad.json", '{"version": "1"}'),
        ("hotpot.json", '[{"_id": "x", "question": "q"}]'),
        ("hotpot.json", "not json"),
    ],
)
def test_malformed_files_are_ingest_errors(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    loader = {"qrels.txt": load_trec_qrels, "squad.json": load_squad_retrieval}.get(
        name, load_hotpotqa
    )
    with pytest.raises(IngestError, match=name):
        loader(path)
