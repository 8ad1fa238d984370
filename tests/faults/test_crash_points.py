"""kill -9 at every named write step and at random moments, for every store operation:
the reopened store holds exactly what its writer logged as committed (the last
operation whole or not at all), every derived index agrees with SQLite, BM25 finds each
file's marker and the dense index returns each vector first; finishing the operation
then gives the same store as a run never killed."""

from __future__ import annotations

import random

import pytest

from tests.faults.harness import STORE_POINTS, Workspace

# nth: the second checkpoint (so one saved copy and a log exist), the fourth write
NTH = {"write": 4, "delete": 2, "checkpoint": 2, "sparse": 2, "dense": 2}


def _assert_trial(out: dict) -> None:
    assert out["outcome"] != "error", out.get("error")
    assert out["ok"], out


@pytest.mark.parametrize("point", STORE_POINTS)
def test_every_point_of_a_store_writer(workspace: Workspace, point: str) -> None:
    out = workspace.trial("churn", point, nth=NTH[point.split(".")[0]])
    assert out["outcome"] == "killed", f"{point} was never reached"
    _assert_trial(out)
    if point.startswith("checkpoint.after_commit"):
        assert out["reconciled"]["sparse"] == "log"  # a checkpoint completed: log only


@pytest.mark.parametrize(
    ("op", "point", "nth"),
    [
        ("index", "write.before_commit", 2),
        ("index", "checkpoint.after_sparse", 1),
        ("index-cli", "write.after_commit", 1),
        ("reindex", "write.before_commit", 2),
        ("reindex", "write.after_commit", 1),
        ("remove", "delete.after_commit", 1),
        ("prune", "delete.before_commit", 1),
    ],
)
def test_points_of_indexing_operations(workspace: Workspace, op: str, point: str, nth: int) -> None:
    out = workspace.trial(op, point, nth=nth)
    assert out["outcome"] == "killed", f"{op} never reached {point}:{nth}"
    _assert_trial(out)


@pytest.mark.parametrize(("op", "seed"), [("index", 1), ("churn", 3)])
def test_random_kills(workspace: Workspace, op: str, seed: int) -> None:
    out = workspace.trial(op, delay=workspace.random_delay(op, random.Random(seed)))
    _assert_trial(out)
