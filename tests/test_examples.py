"""The worked example of docs/architecture.md runs as documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_stage.py"


def test_a_users_reranker_registered_by_name_runs_in_a_configured_pipeline(
    tmp_path: Path, capsys: object
) -> None:
    spec = importlib.util.spec_from_file_location("custom_stage", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answer = module.main(tmp_path / "store")
    sources = [Path(h.doc.source or "").name for h in answer.context]
    assert sources == ["bicycle-derailleur.md", "bicycle-derailleur.md"]
    # ranked by the example's own scores, which the reranker base recorded per hit
    scores = [h.scores["question-words"] for h in answer.context]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.5
    assert [s.stage for s in answer.stages] == ["retrieve", "rerank"]
    printed = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "rerank   question-words" in printed and "10 -> 2" in printed
    from mmrag.rerank import RERANKERS

    assert RERANKERS.resolve("question-words") is module.QuestionWordsReranker
