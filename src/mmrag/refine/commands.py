"""`mmrag eval refine`: answer survival, speed and achieved rate of a refiner on real QA data."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.errors import ConfigError, MMRagError
from mmrag.registry import parse_params

# Default file inside each dataset folder of ../shared/data.
DATA_FILES = {
    "squad": "dev-v1.1.json",
    "cmrc2018": "trial.json",
    "hotpotqa": "dev_distractor_sample100.json",
}


class Task(StrEnum):
    squad = "squad"
    hotpotqa = "hotpotqa"
    cmrc2018 = "cmrc2018"


def dataset_file(task: str, directory: Path) -> Path:
    """The dataset JSON: `directory` itself if it is a file, else the task's file in it."""
    if directory.is_file():
        return directory
    if not directory.is_dir():
        raise ConfigError(f"{directory} is neither a dataset folder nor a file")
    path = directory / DATA_FILES[task]
    if path.is_file():
        return path
    found = sorted(directory.glob("*.json"))
    if len(found) == 1:
        return found[0]
    raise ConfigError(f"no {DATA_FILES[task]} in {directory}; pass the JSON file itself")


def run_refine_eval(
    task: str,
    directory: Path,
    refiner: str,
    rate: float | None,
    budget: int | None,
    questions: int | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    from mmrag.refine import load_refiner
    from mmrag.refine.eval_tasks import evaluate_refiner, hotpot_samples, squad_samples

    path = dataset_file(task, directory)
    samples = (
        hotpot_samples(path, questions) if task == "hotpotqa" else squad_samples(path, questions)
    )
    score = evaluate_refiner(
        load_refiner(refiner, **params), samples, rate=rate, budget_tokens=budget
    )
    return {
        "task": task,
        "refiner": refiner,
        "rate": rate,
        "budget_tokens": budget,
        **score.to_dict(),
    }


def register(eval_app: typer.Typer) -> None:
    """Add `refine` to the `mmrag eval` group."""

    @eval_app.command("refine")
    def eval_refine(
        task: Annotated[Task, typer.Argument(help="squad, hotpotqa or cmrc2018.")],
        directory: Annotated[Path, typer.Argument(help="The dataset folder (or its JSON file).")],
        refiner: Annotated[
            str, typer.Option(help="extractive, lingua, lingua-fast, abstractive.")
        ] = "extractive",
        rate: Annotated[
            float | None, typer.Option(help="Compression factor (4 keeps 1/4).")
        ] = None,
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
        try:
            if rate is None and budget is None:
                rate = 4.0
            result = run_refine_eval(
                task.value, directory, refiner, rate, budget, questions, parse_params(param or [])
            )
        except MMRagError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        text = json.dumps(result, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        typer.echo(text)
