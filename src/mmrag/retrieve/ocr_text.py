"""Text -> image through the images' OCR text: BM25 over character n-grams and numbers.

OCR drops and inserts spaces ("SDNBHD") and amounts ("9.00") are not words, which
word-level BM25 cannot match; n-grams of the text with spaces removed can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from mmrag.index.base import Store
from mmrag.index.bm25 import BM25Params
from mmrag.index.sparse import SparseIndex
from mmrag.models.image import VISUAL
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.types import Modality, Query, Ranked, StageReport, timed

_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_NOT_ALNUM = re.compile(r"[\W_]+")


def ocr_terms(text: str, n: int = 4) -> list[str]:
    """Number tokens ("#9.00") and character n-grams of the text with every non-word
    character removed, so "SDN BHD" and "SDNBHD" share their terms."""
    text = text.lower()
    terms = ["#" + m for m in _NUMBER.findall(text)]
    squeezed = _NOT_ALNUM.sub("", text)
    if 0 < len(squeezed) < n:
        terms.append(squeezed)
    terms.extend(squeezed[i : i + n] for i in range(len(squeezed) - n + 1))
    return terms


class OCRTextRetriever(Retriever):
    """BM25 over OCR-robust terms of the text of image and page documents.

    The terms (`ocr_terms`) go into an in-memory SparseIndex, the one the store uses for
    words, built from the store's documents on first use and rebuilt when the store's
    size changes. A query counts each of its distinct terms once.
    """

    name = "ocr-text"

    def __init__(
        self,
        store: Store,
        modalities: Sequence[Modality] = VISUAL,
        n: int = 4,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        self.store = store
        self.modalities = {str(m) for m in modalities}
        self.n, self.k1, self.b = n, k1, b
        self.params = BM25Params(method="lucene", k1=k1, b=b)
        self._built_for: int | None = None

    def _build(self) -> None:
        keys, docs, terms = [], [], []
        for key, doc in self.store.iter_documents():
            if str(doc.modality) not in self.modalities or not doc.text.strip():
                continue
            keys.append(key)
            docs.append(doc)
            terms.append(ocr_terms(doc.text, self.n))
        # Row ids are positions in `docs`: store keys need not be integers.
        self._index = SparseIndex()
        self._index.add(np.arange(len(docs), dtype=np.int64), terms)
        self._keys, self._docs = np.asarray(keys), docs
        self._built_for = len(self.store)

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        if self._built_for != len(self.store):
            self._build()
        out = []
        for q in map(as_query, queries):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                allowed = None
                if q.filters:
                    keys = self.store.filter_keys(q.filters)
                    allowed = np.flatnonzero(np.isin(self._keys, keys)).astype(np.int64)
                terms = list(dict.fromkeys(ocr_terms(q.text, self.n)))
                positions, scores = self._index.search(terms, k, self.params, allowed)
                # Okapi's (k1 + 1) numerator, which Lucene's BM25 drops: a constant
                # factor that keeps the scale these scores have always had, which fitted
                # calibrations assume.
                scale = self.k1 + 1
                scored = [
                    (self._docs[p], scale * s)
                    for p, s in zip(positions.tolist(), scores.tolist(), strict=True)
                ]
            out.append(to_ranked(q, scored, report))
        return out
