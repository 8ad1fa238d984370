"""`eval_qa` and `mmrag eval qa` end to end on a real SQuAD subset (six paragraphs of one
article, written to tmp_path): stores built for real, questions asked through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.eval.qa import (
    QAQuestion,
    eval_qa,
    index_default_encoder,
    load_task,
    refusal_share,
    score_answer,
    spread,
    summarise,
)
from mmrag.eval.qa_metrics import SCORERS
from mmrag.generate.base import NOT_FOUND, Answer, Citation
from mmrag.index.store import EmbeddedStore
from mmrag.types import Document, Hit

ARTICLE = 1  # Amazon_rainforest in SQuAD v1.1 dev
PARAGRAPHS = 6
REQUIRED_KEYS = {
    "em",
    "f1",
    "answer_in_cited_passage",
    "cited_share",
    "supported_sentence_share",
    "refusal_when_absent",
    "seconds_p50",
    "seconds_p95",
    "tokens_per_s",
    "first_token_s_p50",
    "questions",
    "failures",
    "definitions",
    "config",
    "stores",
    "machine",
    "started",
    "finished",
}
RECORD_KEYS = {"id", "gold", "answer", "cited", "em", "f1", "not_found", "seconds", "error"}
RETRIEVAL_ONLY = "[retrieve]\nk = 3\n"
# The library's local generator, with fewer new tokens so the test stays quick.
LOCAL_GENERATOR = RETRIEVAL_ONLY + (
    '[generate]\nname = "llm"\n[generate.params]\nmax_tokens = 32\nmax_passage_chars = 600\n'
)


@pytest.fixture(scope="module")
def subset(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = json.loads((data_dir / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    article = dict(data["data"][ARTICLE])
    article["paragraphs"] = article["paragraphs"][:PARAGRAPHS]
    path = tmp_path_factory.mktemp("squad") / "subset.json"
    path.write_text(json.dumps({"version": "1.1", "data": [article]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("qa")
    (folder / "retrieval.toml").write_text(RETRIEVAL_ONLY)
    (folder / "generator.toml").write_text(LOCAL_GENERATOR)
    return folder


@pytest.fixture(scope="module")
def retrieval_run(subset: Path, work: Path) -> dict[str, Any]:
    return eval_qa(
        "squad",
        subset,
        pipeline=work / "retrieval.toml",
        questions=4,
        cache=work / "cache" / "eval-stores",
        show=False,
    )


def _sources(path: str) -> set[str]:
    with EmbeddedStore(path, read_only=True) as store:
        return {s["source_id"] for s in store.sources()}


def test_retrieval_only_run_has_the_schema_and_scores_no_text_as_wrong(
    retrieval_run: dict[str, Any], subset: Path
) -> None:
    assert REQUIRED_KEYS <= set(retrieval_run)
    assert retrieval_run["n_questions"] == 4 and len(retrieval_run["questions"]) == 4
    for record in retrieval_run["questions"]:
        assert RECORD_KEYS <= set(record)
        assert record["answer"] == "" and record["finish_reason"] == "no_generator"
        assert record["em"] == 0.0 and record["f1"] == 0.0 and not record["answered"]
        assert len(record["retrieved"]) == 3 and record["cited"] == []
        assert record["absent"]["finish_reason"] == "no_generator"
    assert retrieval_run["em"] == 0.0 and retrieval_run["f1"] == 0.0
    # nothing was answered or generated: these have no denominator, so null, not 0
    assert retrieval_run["answer_in_cited_passage"] is None
    assert retrieval_run["cited_share"] is None
    assert retrieval_run["supported_sentence_share"] is None
    assert retrieval_run["refusal_when_absent"] is None
    assert retrieval_run["tokens_per_s"] is None
    assert retrieval_run["seconds_p50"] <= retrieval_run["seconds_p95"]
    assert retrieval_run["config"]["pipeline"] == {"retrieve": {"k": 3}}
    # the English store uses what `mmrag index` uses by default, whatever that is now
    assert retrieval_run["config"]["encoder"] == index_default_encoder().info()
    assert len(retrieval_run["machine"]["load_average_start"]) == 3


def test_questions_are_spread_over_the_whole_file(
    retrieval_run: dict[str, Any], subset: Path
) -> None:
    data = json.loads(subset.read_text(encoding="utf-8"))
    ids = [qa["id"] for p in data["data"][0]["paragraphs"] for qa in p["qas"]]
    step = len(ids) / 4
    assert [r["id"] for r in retrieval_run["questions"]] == [ids[int(i * step)] for i in range(4)]
    # from the first paragraph to the last ones, not the first four questions
    assert len({r["gold_paragraphs"][0] for r in retrieval_run["questions"]}) >= 3
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], 5) == [1, 2]


def test_open_store_holds_every_paragraph_of_the_file(
    retrieval_run: dict[str, Any], subset: Path
) -> None:
    everything = {f"0-{i}" for i in range(PARAGRAPHS)}
    assert _sources(retrieval_run["stores"]["open"]["path"]) == everything
    assert retrieval_run["stores"]["open"]["paragraphs"] == PARAGRAPHS
    assert set(load_task("squad", subset).paragraphs) == everything


def test_absent_store_lacks_exactly_the_gold_paragraphs(retrieval_run: dict[str, Any]) -> None:
    gold = {p for r in retrieval_run["questions"] for p in r["gold_paragraphs"]}
    assert retrieval_run["stores"]["absent"]["removed"] == sorted(gold)
    everything = {f"0-{i}" for i in range(PARAGRAPHS)}
    assert _sources(retrieval_run["stores"]["absent"]["path"]) == everything - gold
    for record in retrieval_run["questions"]:
        assert not set(record["absent"]["retrieved"]) & gold


def _hit(task: Any, pid: str) -> Hit:
    return Hit(Document(id=pid, text=task.paragraphs[pid], source_id=pid), 1.0)


def test_answer_in_cited_passage_is_computed_from_the_cited_passages(subset: Path) -> None:
    task = load_task("squad", subset)
    scorer = SCORERS["squad"]
    question = task.questions[0]  # "Which name is also used to describe the Amazon ..."
    (gold,) = question.gold
    other = next(
        p for p in task.paragraphs if not scorer.found_in([task.paragraphs[p]], question.answers)
    )
    context = [_hit(task, gold), _hit(task, other)]

    def answer(cited: list[int], reason: str = "stop") -> Answer:
        citations = [Citation(n, context[n - 1]) for n in cited]
        return Answer(question.question, "Amazonia.", context, citations, finish_reason=reason)

    cites_gold = score_answer(question, answer([1]), scorer, 1.0)
    cites_other = score_answer(question, answer([2]), scorer, 1.0)
    assert cites_gold["answer_in_cited_passage"] is True and cites_gold["cited"] == [gold]
    assert cites_other["answer_in_cited_passage"] is False and cites_other["cited"] == [other]
    # the gold paragraph was in the context both times: only what is cited counts
    assert cites_gold["gold_retrieved"] and cites_other["gold_retrieved"]
    assert summarise([cites_gold])["answer_in_cited_passage"] == 1.0
    assert summarise([cites_other])["answer_in_cited_passage"] == 0.0
    uncited = score_answer(question, answer([]), scorer, 1.0)
    refused = score_answer(question, answer([1], NOT_FOUND), scorer, 1.0)
    failed = score_answer(question, None, scorer, 2.0, error="generate stage 'llm' failed")
    both = summarise([cites_gold, cites_other, uncited, refused, failed])
    # over answered questions only: the refusal and the failure are not in the denominator
    assert both["counts"]["answered"] == 3 and both["answer_in_cited_passage"] == 0.3333
    assert both["cited_share"] == 0.6667
    assert both["counts"]["failed"] == 1 and failed["f1"] == 0.0
    assert refusal_share([refused, cites_gold]) == 0.5
    assert refusal_share([{"finish_reason": "no_generator", "not_found": False}]) is None


def test_hotpot_yes_no_answers_are_left_out_of_answer_in_cited(subset: Path) -> None:
    task = load_task("squad", subset)
    hit = _hit(task, "0-0")
    yes = QAQuestion("q", "Are both rainforests?", ("yes",), ("0-0",))
    record = score_answer(
        yes, Answer("?", "yes [1]", [hit], [Citation(1, hit)]), SCORERS["hotpotqa"], 1.0
    )
    assert record["answered"] and record["answer_in_cited_passage"] is None
    assert record["em"] == 1.0 and record["f1"] == 1.0


def test_local_generator_run(subset: Path, work: Path) -> None:
    result = eval_qa(
        "squad",
        subset,
        pipeline=work / "generator.toml",
        questions=2,
        cache=work / "cache" / "eval-stores",
        absent=False,  # the absent store is checked above; this keeps the test short
        show=False,
    )
    assert REQUIRED_KEYS <= set(result) and result["counts"]["failed"] == 0
    assert result["tokens_per_s"] > 0 and result["first_token_s_p50"] > 0
    assert result["config"]["stages"] == {"retrieve": "hybrid", "generate": "llm"}
    assert result["config"]["warnings"] == []  # the generator loaded: not retrieval-only
    task = load_task("squad", subset)
    scorer = SCORERS["squad"]
    for record in result["questions"]:
        assert record["error"] is None and record["finish_reason"] != "no_generator"
        assert (record["em"], pytest.approx(record["f1"], abs=1e-4)) == scorer.score(
            record["answer"], record["gold"]
        )
        if record["answered"]:
            # recomputed here from the cited paragraphs of the file itself
            cited_texts = [task.paragraphs[p] for p in record["cited"]]
            assert record["answer_in_cited_passage"] == scorer.found_in(cited_texts, record["gold"])
    assert result["refusal_when_absent"] is None and "absent_counts" not in result
    assert "absent" not in result["stores"]
    verified = [r for r in result["questions"] if r["supported_sentences"] is not None]
    if not verified:
        assert result["supported_sentence_share"] is None  # not verified: null, not 0
    else:
        supported = sum(r["supported_sentences"] for r in verified)
        sentences = sum(r["sentences"] for r in verified)
        assert result["supported_sentence_share"] == round(supported / sentences, 4)


def test_cli_writes_the_json_and_reuses_the_cached_stores(
    subset: Path, work: Path, retrieval_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRAG_CACHE", str(work / "cache"))
    out = work / "cli.json"
    args = ["eval", "qa", "squad", str(subset), "--pipeline", str(work / "retrieval.toml")]
    result = CliRunner().invoke(app, [*args, "--questions", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["stores"] == retrieval_run["stores"]
    assert [r["id"] for r in written["questions"]] == [r["id"] for r in retrieval_run["questions"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["squad", "{tmp}/missing"], "neither a dataset folder nor a file"),
        (["squad", "{subset}", "--questions", "0"], "questions must be at least 1"),
        (["squad", "{tmp}/empty.json"], "holds no answerable questions"),
        (["squad", "{subset}", "--pipeline", "{tmp}/missing.toml"], "cannot read pipeline"),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, subset: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty.json").write_text('{"version": "1.1", "data": []}')
    filled = [a.format(tmp=tmp_path, subset=subset) for a in args]
    result = CliRunner().invoke(app, ["eval", "qa", *filled])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_rejects_an_unknown_dataset(subset: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "qa", "natural-questions", str(subset)])
    assert result.exit_code == 2 and "natural-questions" in result.output
