"""Retrievers, selected by name from `RETRIEVERS`."""

from mmrag.registry import Registry
from mmrag.retrieve.base import Retriever

RETRIEVERS: Registry[Retriever] = Registry(
    "retriever",
    {
        "bm25": "mmrag.retrieve.sparse:BM25Retriever",
        "tfidf": "mmrag.retrieve.sparse:TfidfRetriever",
        "dense": "mmrag.retrieve.dense:DenseRetriever",
        "hybrid": "mmrag.retrieve.hybrid:HybridRetriever",
    },
)

__all__ = ["RETRIEVERS", "Retriever"]
