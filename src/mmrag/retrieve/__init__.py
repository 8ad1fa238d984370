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
        "server-hybrid": "mmrag.retrieve.server_hybrid:ServerHybridRetriever",
        "crossmodal": "mmrag.retrieve.crossmodal:CrossModalRetriever",
        "image-text": "mmrag.retrieve.crossmodal:ImageToTextRetriever",
        "ocr-text": "mmrag.retrieve.ocr_text:OCRTextRetriever",
        "multimodal": "mmrag.retrieve.multimodal:MultimodalRetriever",
        "pages": "mmrag.retrieve.pages:PageRetriever",
        "audio-text": "mmrag.retrieve.audio:AudioTextRetriever",
        "sound-likelihood": "mmrag.retrieve.audio:SoundLikelihoodRetriever",
    },
)

__all__ = ["RETRIEVERS", "Retriever"]
