"""`eval refine` command on a real SQuAD subset, through typer's own test runner."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from mmrag.cli.eval_refine_cmd import register


def _app() -> typer.Typer:
    app = typer.Typer()
    eval_app = typer.Typer()
    app.add_typer(eval_app, name="eval")
    register(eval_app)
    return app


def test_eval_refine_squad_writes_the_metrics(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "refine.json"
    args = ["eval", "refine", "squad", str(data_dir / "squad"), "--refiner", "extractive"]
    args += ["--rate", "4", "--questions", "6", "--json", str(out)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text(encoding="utf-8"))
    assert {"answer_survival", "tokens_per_s", "achieved_rate"} <= set(metrics)
    assert metrics["questions"] == 6 and 3.3 <= metrics["achieved_rate"] <= 4.8
    assert 0.0 <= metrics["answer_survival"] <= 1.0 and metrics["tokens_per_s"] > 0


def test_eval_refine_errors_are_one_line(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["eval", "refine", "squad", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    args = ["eval", "refine", "squad", str(data_dir / "squad"), "--rate", "0.25"]
    result = CliRunner().invoke(_app(), [*args, "--questions", "1"])
    assert result.exit_code == 2 and "did you mean 4?" in result.output
