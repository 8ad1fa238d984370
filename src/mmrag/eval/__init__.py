"""Evaluation: trec_eval-compatible metrics and loaders for the evaluation datasets.

The benchmark runner (`mmrag.eval.runner`) is not imported here: it pulls in the store
and the encoders, while metrics and loaders need only numpy and the standard library.
"""

from mmrag.eval.datasets import (
    BeirData,
    Dl19Data,
    SquadRetrieval,
    data_root,
    load_beir,
    load_dl19,
    load_hotpotqa,
    load_squad_retrieval,
    load_trec_qrels,
    load_trec_run,
)
from mmrag.eval.metrics import (
    MetricResult,
    Qrels,
    Run,
    evaluate,
    evaluate_per_query,
    read_trec_run,
    write_trec_run,
)

__all__ = [
    "BeirData",
    "Dl19Data",
    "MetricResult",
    "Qrels",
    "Run",
    "SquadRetrieval",
    "data_root",
    "evaluate",
    "evaluate_per_query",
    "load_beir",
    "load_dl19",
    "load_hotpotqa",
    "load_squad_retrieval",
    "load_trec_qrels",
    "load_trec_run",
    "read_trec_run",
    "write_trec_run",
]
