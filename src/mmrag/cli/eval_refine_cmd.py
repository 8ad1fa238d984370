"""`mmrag eval refine`: a face over eval/refine_run.py's run_refine_eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.friendly import plain_error
from mmrag.cli.results import write_json_file
from mmrag.errors import MMRagError
from mmrag.eval.refine_run import Task
from mmrag.registry import parse_params


def eval_refine(
    task: Annotated[Task, typer.Argument(help="squad, hotpotqa or cmrc2018.")],
    directory: Annotated[Path, typer.Argument(help="The dataset folder (or its JSON file).")],
    refiner: Annotated[
        str, typer.Option(help="extractive, lingua, lingua-fast, abstractive.")
    ] = "extractive",
    rate: Annotated[float | None, typer.Option(help="Compression factor (4 keeps 1/4).")] = None,
    budget: Annotated[
        int | None, typer.Option(help="Token budget: instruction + question + passages.")
    ] = None,
    questions: Annotated[int, typer.Option(help="Questions, spread over the file.")] = 200,
    param: Annotated[
        list[str] | None, typer.Option(help="Refiner parameter key=value (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--json", help="Write the metrics here.")] = None,
) -> None:
    """Share of questions whose gold answer survives refining, tokens/s, achieved rate."""
    from mmrag.eval.refine_run import run_refine_eval

    try:
        if rate is None and budget is None:
            rate = 4.0
        result = run_refine_eval(
            task.value, directory, refiner, rate, budget, questions, parse_params(param or [])
        )
    except MMRagError as exc:
        raise plain_error(exc) from None
    text = json.dumps(result, indent=2)
    if out is not None:
        write_json_file(out, text)
    typer.echo(text)


def register(eval_app: typer.Typer) -> None:
    """Add `refine` to the `mmrag eval` group."""
    eval_app.command("refine")(eval_refine)
