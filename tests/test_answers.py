"""The default pipeline answers the sample corpus's questions correctly, cited and checked.

Real components throughout: hybrid retrieval over examples/corpus, the packaged
cross-encoder reranker and judge, the packaged Qwen2.5 generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.generate.llm import NOT_FOUND_TEXT, is_refusal
from mmrag.index.store import EmbeddedStore
from mmrag.pipeline import DEFAULT_CONFIG, Pipeline
from tests.corpus_store import corpus_store


@pytest.fixture(scope="module")
def pipeline(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    path = corpus_store(cache_dir, tmp_path_factory.mktemp("answers") / "store")
    with EmbeddedStore(path) as store:
        yield Pipeline.from_config(DEFAULT_CONFIG, store)


@pytest.mark.parametrize(
    ("question", "expected", "source"),
    [
        ("Who invented the printing press?", ["Gutenberg"], "printing-press.txt"),
        (
            "What metal alloy did Gutenberg use for type?",
            ["lead", "tin", "antimony"],
            "printing-press.txt",
        ),
        ("Why does sourdough rise without commercial yeast?", ["yeast"], "sourdough-baking.md"),
    ],
)
def test_answers_are_right_cited_and_supported(
    pipeline: Pipeline, question: str, expected: list[str], source: str
) -> None:
    answer = pipeline.ask(question)
    assert not answer.not_found, answer.stages[-1].extra
    for word in expected:
        assert word.lower() in answer.text.lower(), answer.text
    assert answer.citations, answer.text
    assert any(Path(c.doc.source or "").name == source for c in answer.citations)
    grounding = answer.grounding()
    assert grounding["verified"] and grounding["supported"] >= 1, answer.sentences
    assert all(s.citations for s in answer.sentences if s.supported)


def test_a_question_the_corpus_cannot_answer_is_not_found(pipeline: Pipeline) -> None:
    calls = pipeline.generator.lm.usage.calls  # type: ignore[union-attr]
    answer = pipeline.ask("What is the capital of Australia?")
    assert answer.not_found and answer.text == NOT_FOUND_TEXT
    assert answer.citations == [] and 1 <= len(answer.context) <= 3  # the closest passages stay
    assert pipeline.generator.lm.usage.calls == calls  # type: ignore[union-attr]
    assert answer.stages[-1].extra["refused_by"] == "relevance"
    assert answer.to_dict()["not_found"] is True


def test_a_follow_up_question_is_made_standalone(pipeline: Pipeline) -> None:
    history = [
        {"role": "user", "content": "Who invented the printing press?"},
        {"role": "assistant", "content": "Johannes Gutenberg invented it around 1440 [1]."},
    ]
    rewritten = pipeline.standalone(history, "Which metals did he cast his type from?")
    assert "Gutenberg" in rewritten
    assert pipeline.standalone([], "Who was Ada Lovelace?") == "Who was Ada Lovelace?"


def test_refusals_are_recognised() -> None:
    assert is_refusal("NOT FOUND")
    assert is_refusal("The passages do not mention the capital of Australia.")
    assert is_refusal("未找到答案")
    assert not is_refusal("Gutenberg invented it [1].")
    assert not is_refusal("Nothing found its way into Europe before 1440 [2].")


def test_a_generator_that_cannot_load_leaves_retrieval_answers(
    cache_dir: Path, tmp_path: Path
) -> None:
    path = corpus_store(cache_dir, tmp_path / "store")
    config = {
        "retrieve": {"k": 3},
        "generate": {
            "name": "llm",
            "params": {"model": str(tmp_path / "gone.gguf"), "runtime": "llama-cpp"},
        },
    }
    with EmbeddedStore(path) as store:
        pipeline = Pipeline.from_config(config, store)
        assert pipeline.generator is None
        assert "gone.gguf" in pipeline.warnings[0]
        answer = pipeline.ask("Who invented the printing press?")
    assert answer.finish_reason == "no_generator" and len(answer.context) == 3
