"""The pipeline on a real store of examples/corpus, with MiniLM, BM25 and the local Qwen2.5-0.5B."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.errors import ConfigError
from mmrag.generate import Answer
from mmrag.index.media import media_resolver
from mmrag.index.store import EmbeddedStore
from mmrag.pipeline import Pipeline, StageFailed
from mmrag.retrieve import RETRIEVERS
from mmrag.types import Document, Ranked
from tests.corpus_store import corpus_store

QUESTION = "Who invented the printing press?"
GENERATE = """
[generate]
name = "llm"
[generate.params]
model = "qwen2.5-coder-0.5b-instruct"  # the fast one: these tests check mechanics, not quality
max_tokens = 24
style = "sentence"  # in the short style the 0.5B model names Johann Fust
max_passage_chars = 600
"""


@pytest.fixture(scope="module")
def store(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    path = corpus_store(cache_dir, tmp_path_factory.mktemp("pipeline") / "store")
    with EmbeddedStore(path) as st:
        yield st


def _toml(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "pipeline.toml"
    file.write_text(text)
    return file


@pytest.fixture(scope="module")
def answering(store: EmbeddedStore, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    config = '[retrieve]\nname = "hybrid"\nk = 3\n' + GENERATE
    return Pipeline.from_toml(_toml(tmp_path_factory.mktemp("cfg"), config), store)


def _unmarked(text: str) -> str:
    """The words, without markers: the final text shows each marker once, before the stop."""
    return re.sub(r"\s+([.!?])", r"\1", " ".join(re.sub(r"\[\d+\]", "", text).split()))


def test_ask_answers_from_the_right_passage_with_stage_reports(answering: Pipeline) -> None:
    answer = answering.ask(QUESTION)
    assert Path(answer.context[0].doc.source or "").name == "printing-press.txt"
    assert len(answer.context) == 3
    assert "Gutenberg" in answer.text
    assert answer.citations, "the answer copies a passage, so it is cited (by marker or overlap)"
    for c in answer.citations:
        assert 1 <= c.number <= 3 and answer.cited(c.number) is c.hit
    assert [s.stage for s in answer.stages] == ["retrieve", "generate"]
    retrieve, generate = answer.stages
    assert retrieve.name == "hybrid" and retrieve.n_out == 3 and retrieve.extra["k"] == 3
    assert generate.n_in == 3 and generate.n_out == len(answer.citations)
    assert generate.extra["max_tokens"] == 24
    assert 0 < generate.extra["completion_tokens"] <= 24
    assert generate.extra["prompt_tokens"] > 100  # three passages were read
    assert generate.tokens == generate.extra["prompt_tokens"] + generate.extra["completion_tokens"]
    assert all(s.seconds > 0 for s in answer.stages)
    # the component reports travel too: the retriever's and the generator's own
    assert [r.stage for r in answer.reports] == ["retrieve", "generate"]


def test_stream_yields_context_then_text_then_the_answer(answering: Pipeline) -> None:
    items = list(answering.stream(QUESTION, max_tokens=12))
    assert isinstance(items[0], Ranked) and isinstance(items[-1], Answer)
    pieces = items[1:-1]
    assert pieces and all(isinstance(p, str) for p in pieces)
    answer = items[-1]
    assert answer.context == items[0].hits
    assert _unmarked("".join(pieces)) == _unmarked(answer.text)
    assert answer.stages[-1].extra["max_tokens"] == 12


def test_each_stage_is_callable_alone(answering: Pipeline, store: EmbeddedStore) -> None:
    ranked = answering.retrieve(QUESTION)
    reference = RETRIEVERS.create("hybrid", store=store).retrieve(QUESTION, 3)
    assert ranked.ids() == reference.ids()
    assert answering.steps == [] and answering.postprocess(ranked) is ranked  # none configured
    only_two = ranked.top(2)
    answer = answering.generate(only_two, max_tokens=8)
    assert answer.context == only_two.hits
    assert all(c.number <= 2 for c in answer.citations)


def test_stages_missing_from_the_config_are_skipped(store: EmbeddedStore, tmp_path: Path) -> None:
    pipeline = Pipeline.from_toml(_toml(tmp_path, '[retrieve]\nname = "bm25"\nk = 4\n'), store)
    answer = pipeline.ask(QUESTION)
    assert answer.text == "" and answer.finish_reason == "no_generator"
    assert [s.stage for s in answer.stages] == ["retrieve"]
    assert [h.doc.id for h in answer.context] == RETRIEVERS.create("bm25", store=store).retrieve(
        QUESTION, 4
    ).ids()


def test_no_passage_means_no_model_call(answering: Pipeline) -> None:
    usage = answering.generator.lm.usage  # type: ignore[union-attr]
    calls = usage.calls
    empty = Ranked(answering.retrieve(QUESTION).query, [])
    answer = answering.generate(empty)
    assert answer.finish_reason == "no_context" and answer.citations == []
    assert usage.calls == calls


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[retrieval]\nname = 'bm25'\n", "unknown pipeline sections"),
        ("[retrieve]\nname = 'bm25'\nfusion = 'rrf'\n", "[retrieve.params]"),
        ("[retrieve]\nk = 0\n", "k must be a positive integer"),
        ("[retrieve]\nname = 'nope'\n", "unknown retriever 'nope'"),
        ("[retrieve]\nname = 'bm25'\n[retrieve.params]\ncolour = 'red'\n", "bad parameters"),
        ("[rerank]\nk = 3\n", "[rerank] needs a name"),
        ("[generate]\nname = 'nope'\n", "unknown generator 'nope'"),
        ("[retrieve\n", "not valid TOML"),
    ],
)
def test_bad_configs_are_clear_errors(
    store: EmbeddedStore, tmp_path: Path, config: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Pipeline.from_toml(_toml(tmp_path, config), store)


def test_a_missing_config_file_is_a_clear_error(store: EmbeddedStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read pipeline config"):
        Pipeline.from_toml(tmp_path / "absent.toml", store)


def test_a_failing_generator_hands_back_the_retrieved_passages(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    config = """
[retrieve]
name = "bm25"
k = 3
[generate]
name = "llm"
[generate.params]
base_url = "http://127.0.0.1:9/v1"   # the discard port: nothing listens there
model = "none"
retries = 0
timeout = 2
"""
    pipeline = Pipeline.from_toml(_toml(tmp_path, config), store)
    with pytest.raises(StageFailed) as failure:
        pipeline.ask(QUESTION)
    assert failure.value.stage == "generate"
    assert "generate stage 'llm' failed" in str(failure.value)
    assert failure.value.ranked.ids() == pipeline.retrieve(QUESTION).ids()
    assert len(failure.value.ranked) == 3


def test_media_resolver_never_leaves_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / "uploads" / "ab").mkdir(parents=True)
    inside = root / "uploads" / "ab" / "page.pdf"
    inside.write_bytes(b"%PDF-1.4 inside")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "uploads" / "link.txt").symlink_to(outside)
    resolve = media_resolver(root)

    def doc(media: str | None = None, source: str | None = None) -> Document:
        return Document(id="d", text="t", media=media, source=source)

    assert resolve(doc(media="uploads/ab/page.pdf")) == inside.resolve()
    assert resolve(doc(source=str(inside))) == inside.resolve()
    for bad in (
        "../secret.txt",
        "uploads/../../secret.txt",
        str(outside),
        "uploads/link.txt",
        "/etc/passwd",
        ".",
        "uploads/ab",
        "uploads/ab/page.pdf\x00.jpg",
        "",
    ):
        assert resolve(doc(media=bad)) is None, bad
        assert resolve(doc(source=bad)) is None, bad
    assert os.path.exists(outside)


def test_rerank_and_refine_stages_compose(store: EmbeddedStore, tmp_path: Path) -> None:
    config = (
        '[retrieve]\nname = "bm25"\nk = 8\n'
        '[rerank]\nname = "biencoder"\nk = 3\n'
        '[refine]\nname = "extractive"\nbudget = 160\n' + GENERATE
    )
    pipeline = Pipeline.from_toml(_toml(tmp_path, config), store)
    answer = pipeline.ask(QUESTION)
    assert [s.stage for s in answer.stages] == ["retrieve", "rerank", "refine", "generate"]
    retrieve, rerank, refine, _ = answer.stages
    assert rerank.n_in == retrieve.n_out > 3 and rerank.n_out == 3  # BM25 may match fewer than k
    assert refine.n_in == 3 and 1 <= len(answer.context) <= 3
    assert refine.extra["tokens_out"] <= 160 < refine.extra["tokens_in"]
    assert all(Path(h.doc.source or "").name == "printing-press.txt" for h in answer.context)
    assert "Gutenberg" in " ".join(h.text for h in answer.context)  # the answer survived
    # every kept piece still points into its source, so the answer can cite it
    for hit in answer.context:
        assert hit.passage and hit.kept
        for span in hit.kept:
            assert hit.doc.span.start <= span.start < span.end <= hit.doc.span.end
    assert all(1 <= c.number <= len(answer.context) for c in answer.citations)
