"""Answer survival, speed and achieved rate of a refiner on real QA data, as
`mmrag eval refine` runs it (its typer face lives in mmrag/cli)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError

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
    from mmrag.eval.refine import evaluate_refiner, hotpot_samples, squad_samples
    from mmrag.refine import load_refiner

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
