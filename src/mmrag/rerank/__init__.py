"""Rerankers, selected by name from `RERANKERS`: ranked hits in, re-ordered hits out.

"default" is the best offline reranker measured here (see bench/rerank.py and fusion.py).
"""

from mmrag.registry import Registry
from mmrag.rerank.base import Reranker

RERANKERS: Registry[Reranker] = Registry(
    "reranker",
    {
        "default": "mmrag.rerank.fusion:DefaultReranker",
        "fusion": "mmrag.rerank.fusion:FusionReranker",
        "first-stage": "mmrag.rerank.fusion:FirstStageReranker",
        "cross-encoder": "mmrag.rerank.cross_encoder:CrossEncoderReranker",
        "cross-encoder-onnx": "mmrag.rerank.onnx_cross_encoder:OnnxCrossEncoderReranker",
        "monot5": "mmrag.rerank.seq2seq:MonoT5Reranker",
        "biencoder": "mmrag.rerank.biencoder:BiEncoderReranker",
        "maxsim": "mmrag.rerank.maxsim:MaxSimReranker",
        "splade": "mmrag.rerank.splade:SpladeReranker",
        "llm-pointwise": "mmrag.rerank.llm_pointwise:PointwiseLLMReranker",
        "llm-pairwise": "mmrag.rerank.llm_pairwise:PairwiseLLMReranker",
        "llm-listwise": "mmrag.rerank.llm_listwise:ListwiseLLMReranker",
        "first": "mmrag.rerank.first:FirstReranker",
        "image": "mmrag.rerank.image:ImageReranker",
    },
)

__all__ = ["RERANKERS", "Reranker"]
