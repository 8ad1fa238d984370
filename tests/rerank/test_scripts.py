"""Rerankers that read only some writing systems: the packaged English cross-encoder
handed Chinese questions from CMRC 2018 keeps the first stage's order (on the QA
benchmark it had moved the gold paragraph out of the top 3 for 40% of the questions
hybrid retrieval placed there), and still reranks English."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.rerank import RERANKERS
from mmrag.rerank.fusion import FusionReranker
from mmrag.text_script import dominant_script, normalise_scripts, reads
from mmrag.types import Document, Hit, Query, Ranked
from tests.rerank.conftest import dl19_ranked


@pytest.fixture(scope="module")
def cmrc(data_dir: Path) -> list[tuple[str, str]]:
    """(question, its paragraph) for the first question of the first eight articles."""
    data = json.loads((data_dir / "cmrc2018" / "trial.json").read_text(encoding="utf-8"))
    out = []
    for article in data["data"][:8]:
        paragraph = article["paragraphs"][0]
        out.append((paragraph["qas"][0]["question"], paragraph["context"]))
    return out


@pytest.fixture(scope="module")
def reranker():
    return RERANKERS.create("cross-encoder-onnx")


def test_scripts_of_questions() -> None:
    assert dominant_script("Who invented the printing press?") == "LATIN"
    assert dominant_script("谷雨是第几个节气？") == "HAN"
    assert dominant_script("NBA球队Lakers是哪年成立的？") == "HAN"  # a name inside Chinese
    assert dominant_script("Кто изобрёл печатный станок?") == "CYRILLIC"
    assert dominant_script("1440?") is None
    assert reads(normalise_scripts(["latin"]), "1440?")  # nothing to misread
    assert not reads(normalise_scripts(["Latin"]), "谷雨是第几个节气？")
    assert reads(None, "谷雨是第几个节气？")


def test_a_chinese_query_keeps_the_first_stage_order(reranker, cmrc) -> None:
    docs = [Document(id=str(i), text=p) for i, (_, p) in enumerate(cmrc)]
    for question, _ in cmrc[:3]:
        hits = [Hit(doc=d, score=float(len(docs) - i)) for i, d in enumerate(docs)]
        out = reranker.rerank(Ranked(Query(question), hits), k=3)
        report = out.reports[-1]
        assert out.ids() == ["0", "1", "2"]
        assert report.model_calls == 0 and "HAN" in report.extra["skipped"]


def test_english_is_still_reranked(reranker, dl19) -> None:
    ranked = dl19_ranked(dl19, "264014", depth=10)
    out = reranker.rerank(ranked)
    assert out.reports[-1].model_calls == 10 and "skipped" not in out.reports[-1].extra
    assert out.ids() != ranked.ids()


def test_a_fusion_leaves_out_members_that_cannot_read_the_query(reranker, cmrc) -> None:
    fusion = FusionReranker([reranker, "first-stage"])
    docs = [Document(id=str(i), text=p) for i, (_, p) in enumerate(cmrc)]
    hits = [Hit(doc=d, score=float(len(docs) - i)) for i, d in enumerate(docs)]
    out = fusion.rerank(Ranked(Query(cmrc[5][0]), hits))
    assert out.reports[-1].extra["skipped_members"] == ["cross-encoder-onnx"]
    assert out.ids() == [d.id for d in docs]


def test_a_model_by_path_declares_its_scripts(reranker) -> None:
    other = RERANKERS.create("cross-encoder-onnx", scripts=["han", "latin"])
    assert other.scripts == frozenset({"HAN", "LATIN"}) and reranker.scripts == {"LATIN"}
