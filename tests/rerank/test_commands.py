"""`mmrag eval rerank` on a few real DL19 queries, through the `mmrag` app itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mmrag.cli import app as mmrag_app
from mmrag.eval.metrics import evaluate
from mmrag.eval.rerank import dl19_rankings, eval_dl19
from mmrag.registry import parse_params
from mmrag.rerank import RERANKERS


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return mmrag_app


def test_eval_rerank_dl19_writes_ndcg_and_cost(app, data_dir: Path, dl19, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    folder = str(data_dir / "trec-dl19")
    args = ["eval", "rerank", "trec-dl19", folder, "--reranker", "first-stage"]
    result = CliRunner().invoke(app, [*args, "--queries", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    rankings = dl19_rankings(dl19, limit=3)
    bm25 = {q: {h.doc.id: h.score for h in r.hits} for q, r in rankings.items()}
    expected = evaluate({q: dl19.qrels[q] for q in rankings}, bm25, ["ndcg@10"])["ndcg@10"]
    # the first stage reranked by its own scores is the first stage
    assert written["ndcg@10"] == pytest.approx(expected, abs=1e-4)
    assert written["first_stage"]["ndcg@10"] == written["ndcg@10"]
    assert 0.0 < written["ndcg@10"] <= 1.0
    # the first stage calls no model; keeping an order of 100 hits costs about 0.1 ms a
    # query (reported to 0.1 ms, so it may read 0.0), never anywhere near a second
    assert written["queries"] == 3 and written["queries_with_failures"] == 0
    assert written["model_calls_per_query"] == 0 and written["tokens_per_query"] == 0
    ms = written["ms_per_query"]
    assert isinstance(ms, float) and math.isfinite(ms) and 0.0 <= ms < 1000.0
    # the command is a face over eval_dl19: the same result, plus the name and params asked
    library = eval_dl19(folder, RERANKERS.create("first-stage"), limit=3)
    assert written["reranker"] == "first-stage" and written["params"] == {}
    untimed = {"ms_per_query", "reranker", "params"}
    assert {k: v for k, v in written.items() if k not in untimed} == {
        k: v for k, v in library.items() if k not in untimed
    }


def test_eval_rerank_errors_are_one_line(app, data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    folder = str(data_dir / "trec-dl19")
    unknown = runner.invoke(app, ["eval", "rerank", "trec-dl19", folder, "--reranker", "nope"])
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output
    missing = runner.invoke(app, ["eval", "rerank", "trec-dl19", str(tmp_path / "absent")])
    assert missing.exit_code == 2 and "not a dataset folder" in missing.output
    bad = runner.invoke(
        app, ["eval", "rerank", "trec-dl19", folder, "--reranker", "first-stage", "--param", "x"]
    )
    assert bad.exit_code == 2 and "key=value" in bad.output


def test_parse_params_reads_json_values() -> None:
    assert parse_params(["depth=20", "method=allpairs", "weights=[1, 0.5]"]) == {
        "depth": 20,
        "method": "allpairs",
        "weights": [1, 0.5],
    }
