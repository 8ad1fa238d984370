"""`mmrag eval qa`: a face over eval/qa.py's eval_qa, the whole pipeline on real QA data."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.console import interactive
from mmrag.cli.friendly import plain_error
from mmrag.cli.results import write_json_file
from mmrag.errors import MMRagError


class QADataset(StrEnum):
    squad = "squad"
    hotpotqa = "hotpotqa"
    cmrc2018 = "cmrc2018"


def eval_qa_command(
    dataset: Annotated[QADataset, typer.Argument(help="squad, hotpotqa or cmrc2018.")],
    path: Annotated[Path, typer.Argument(help="The dataset folder or its JSON file.")],
    pipeline: Annotated[
        Path | None,
        typer.Option(help="Pipeline TOML (default: the library's default pipeline)."),
    ] = None,
    questions: Annotated[int, typer.Option(help="Questions, spread evenly over the file.")] = 200,
    absent: Annotated[
        bool, typer.Option(help="Also ask a store without the gold paragraphs.")
    ] = True,
    out: Annotated[Path | None, typer.Option("--json", help="Write the result here.")] = None,
) -> None:
    """Ask questions over all the file's paragraphs: EM, F1, cited answers, refusals, speed."""
    from mmrag.eval.qa import eval_qa

    try:
        result = eval_qa(
            dataset.value,
            path,
            pipeline=pipeline,
            questions=questions,
            absent=absent,
            show=interactive(),
        )
    except MMRagError as exc:
        raise plain_error(exc) from None
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out is not None:
        write_json_file(out, text)
        # the per-question records make the file long: the terminal gets the summary
        summary = {k: v for k, v in result.items() if k != "questions"}
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        typer.echo(text)


def register(eval_app: typer.Typer) -> None:
    """Add `qa` to the `mmrag eval` group."""
    eval_app.command("qa")(eval_qa_command)
