"""Search across modalities: text → image, image → image, image → text, OCR text → image,
and one multimodal list fused from modality-specific lists.

- `CrossModalRetriever`: dense search in an image–text field; the query is text, an
  image, or both (their vectors are summed), results limited to some modalities.
- `ImageToTextRetriever`: an image query against text documents, in the text field
  when that field lives in the encoder's text space (ConSE/LiT with use-multilingual),
  else in the image field's text documents (indexed with `texts=True`).
- `OCRTextRetriever`: text → image through the images' OCR text, with BM25 over
  character n-grams and number tokens: OCR drops and inserts spaces ("SDNBHD") and
  amounts ("9.00") are not words, which word-level BM25 cannot match.
- `MultimodalRetriever`: runs member retrievers and fuses their lists by RRF or by
  calibrated scores (Platt scaling per member, noisy-OR across lists).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mmrag.errors import ConfigError, StoreError
from mmrag.index.base import Store
from mmrag.index.bm25 import BM25Params
from mmrag.index.fields import IMAGE_TEXT, FieldSpec, field_spec, load_encoder
from mmrag.index.sparse import SparseIndex
from mmrag.models.image import VISUAL, ImageTextEncoder, query_vectors
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.retrieve.fusion import rrf
from mmrag.types import Hit, Modality, Query, Ranked, StageReport, timed


def encoder_for_image_field(store: Store, field: str) -> ImageTextEncoder:
    spec = field_spec(store, field)
    if spec.space != IMAGE_TEXT:
        raise StoreError(f"vector field {field!r} holds {spec.space} vectors, not image-text ones")
    encoder: ImageTextEncoder = load_encoder(spec)
    return encoder


def with_modalities(
    filters: dict[str, Any] | None, modalities: Sequence[Modality] | None
) -> dict[str, Any] | None:
    """A query's filters, narrowed to some modalities."""
    if not modalities:
        return filters
    only = {"modality": {"$in": [str(m) for m in modalities]}}
    return {"$and": [filters, only]} if filters else only


class CrossModalRetriever(Retriever):
    """Text and/or image queries against an image–text field (text → image, image → image)."""

    name = "crossmodal"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"text", "image"})

    def __init__(
        self,
        store: Store,
        field: str = "image",
        encoder: ImageTextEncoder | None = None,
        modalities: Sequence[Modality] | None = VISUAL,
    ) -> None:
        self.store = store
        self.field = field
        self.encoder = encoder or encoder_for_image_field(store, field)
        self.modalities = tuple(modalities) if modalities else None

    def _search(self, qs: list[Query], vectors: np.ndarray, field: str, k: int) -> list[Ranked]:
        out = []
        for q, vec in zip(qs, vectors, strict=True):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                filters = with_modalities(q.filters, self.modalities)
                (scored,) = self.store.search_dense(field, vec[None, :], k, filters)
            out.append(to_ranked(q, scored, report))
        return out

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        return self._search(qs, query_vectors(self.encoder, qs), self.field, k)


class ImageToTextRetriever(CrossModalRetriever):
    """Image queries → text documents (captions, chunks, transcripts)."""

    name = "image-text"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(
        self,
        store: Store,
        field: str = "image",
        encoder: ImageTextEncoder | None = None,
        text_field: str = "text",
    ) -> None:
        super().__init__(store, field, encoder, modalities=(Modality.TEXT,))
        fields = store.fields()
        text_space = self.encoder.info().get("text")
        if text_field in fields and text_space is not None:
            if FieldSpec.from_dict(fields[text_field]).identity == text_space:
                # The image vectors live in this text encoder's space: search it directly.
                self.field = text_field

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        if any(not q.image for q in qs):
            raise ConfigError("image → text search needs an image in every query")
        images_only = [Query(text="", id=q.id, image=q.image, filters=q.filters) for q in qs]
        ranked = self._search(qs, query_vectors(self.encoder, images_only), self.field, k)
        return ranked


# ---- OCR text -----------------------------------------------------------------------

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


# ---- fusion across modalities -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Platt:
    """P(relevant | score) = sigmoid(a * score + b), fitted per retriever (Platt, 1999)."""

    a: float
    b: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * scores + self.b)))


def fit_platt(scores: Sequence[float], labels: Sequence[int], iters: int = 100) -> Platt:
    """Logistic regression of labels on scores by Newton's method, with Platt's smoothed
    targets so a separable sample does not send the slope to infinity."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    if len(s) != len(y) or not len(s):
        raise ConfigError("fit_platt needs one label per score")
    pos, neg = y.sum(), len(y) - y.sum()
    if pos == 0 or neg == 0:
        raise ConfigError("fit_platt needs relevant and non-relevant examples")
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    a, b = 0.0, math.log((pos + 1) / (neg + 1))
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * s + b)))
        g = np.array([((p - t) * s).sum(), (p - t).sum()])
        w = p * (1 - p) + 1e-12
        h = np.array([[(w * s * s).sum(), (w * s).sum()], [(w * s).sum(), w.sum()]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return Platt(float(a), float(b))


def _zscore_probability(scores: np.ndarray) -> np.ndarray:
    """Without a fitted calibration: how far a score stands above its list, squashed."""
    if len(scores) < 2 or scores.std() == 0:
        return np.full(len(scores), 0.5)
    return 1 / (1 + np.exp(-(scores - scores.mean()) / scores.std()))


class MultimodalRetriever(Retriever):
    """One ranked list over every modality, fused from modality-specific retrievers.

    Members that need text are skipped for image-only queries. `fusion="rrf"` ranks by
    reciprocal rank fusion; `fusion="calibrated"` maps each member's scores to a
    probability of relevance (its `Platt` calibration from `calibrations`, else the one
    shipped for its field's encoder, else a z-score squashed by a sigmoid) and combines a
    document's probabilities by noisy-OR, so a document found by two modalities ranks
    above one found by either alone. `fusion="auto"` (default) is calibrated when every
    member has a fitted calibration, RRF otherwise: ranks alone cannot tell a photo that
    matches the query from the best of a list of unrelated text.
    """

    name = "multimodal"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"text", "image"})

    def __init__(
        self,
        store: Store,
        retrievers: Sequence[Retriever] | None = None,
        fusion: str = "auto",
        calibrations: dict[str, Platt] | None = None,
        weights: Sequence[float] | None = None,
        depth: int = 50,
        rrf_k: float = 60.0,
    ) -> None:
        self.retrievers = list(retrievers) if retrievers else self._default_members(store)
        if not self.retrievers:
            raise ConfigError("multimodal search needs at least one member retriever")
        if fusion not in ("auto", "rrf", "calibrated"):
            raise ConfigError(f"unknown fusion {fusion!r}; use auto, rrf or calibrated")
        self.weights = list(weights or [1.0] * len(self.retrievers))
        if len(self.weights) != len(self.retrievers):
            raise ConfigError("multimodal: one weight per retriever")
        self.calibrations = dict(calibrations or {})
        # per member: (calibration, the key in Hit.scores holding the raw score it calibrates)
        self._calibrated_by = [self._member_calibration(store, m) for m in self.retrievers]
        if fusion == "auto":
            fusion = "calibrated" if all(c for c, _ in self._calibrated_by) else "rrf"
        self.fusion, self.depth, self.rrf_k = fusion, depth, rrf_k

    def _member_calibration(self, store: Store, member: Retriever) -> tuple[Platt | None, str]:
        from mmrag.retrieve.calibration import calibration_for
        from mmrag.retrieve.hybrid import HybridRetriever

        if member.name in self.calibrations:
            return self.calibrations[member.name], member.name
        fields = store.fields()
        if isinstance(member, CrossModalRetriever) and member.field in fields:
            return calibration_for(fields[member.field]), member.name
        if isinstance(member, HybridRetriever) and "text" in fields:
            # RRF scores carry no confidence; the dense member's cosine does
            return calibration_for(fields["text"]), "dense"
        return None, member.name

    @staticmethod
    def _default_members(store: Store) -> list[Retriever]:
        from mmrag.retrieve.hybrid import HybridRetriever
        from mmrag.retrieve.sparse import BM25Retriever

        fields = store.fields()
        members: list[Retriever] = [
            HybridRetriever(store) if "text" in fields else BM25Retriever(store)
        ]
        for name, record in fields.items():
            if name != "text" and FieldSpec.from_dict(record).space == IMAGE_TEXT:
                members.append(CrossModalRetriever(store, name))
        return members

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        depth = max(k, self.depth)
        per_member: list[dict[int, Ranked]] = []
        for member in self.retrievers:
            usable = [i for i, q in enumerate(qs) if member.takes(q)]
            results = member.retrieve_many([qs[i] for i in usable], depth) if usable else []
            per_member.append(dict(zip(usable, results, strict=True)))
        out = []
        for i, q in enumerate(qs):
            report = StageReport(stage="retrieve", name=self.name)
            lists, weights, members = [], [], []
            for m, (results, w) in enumerate(zip(per_member, self.weights, strict=True)):
                if i in results:
                    lists.append(results[i].hits)
                    weights.append(w)
                    members.append(m)
                    report.seconds += sum(s.seconds for s in results[i].reports)
            with timed(report):
                if self.fusion == "rrf":
                    fused = rrf(lists, weights, self.rrf_k)
                else:
                    fused = self._calibrated(lists, weights, members)
            report.n_in = sum(len(h) for h in lists)
            report.n_out = min(k, len(fused))
            names = [self.retrievers[m].name for m in members]
            report.extra = {"members": names, "fusion": self.fusion}
            out.append(Ranked(query=q, hits=fused[:k], reports=[report]))
        return out

    def _calibrated(
        self, lists: list[list[Hit]], weights: list[float], members: list[int]
    ) -> list[Hit]:
        miss: dict[str, float] = {}  # doc id -> probability that every list is wrong
        best: dict[str, Hit] = {}
        for hits, w, m in zip(lists, weights, members, strict=True):
            calibration, key = self._calibrated_by[m]
            if not all(c for c, _ in self._calibrated_by):
                # a fitted probability and a z-score are not on one scale: z-score all
                calibration = None
            raw = np.array([h.scores.get(key, h.score) for h in hits], np.float64)
            probs = calibration(raw) if calibration else _zscore_probability(raw)
            for hit, p in zip(hits, probs, strict=True):
                p = min(1.0, max(0.0, w * float(p)))
                miss[hit.doc.id] = miss.get(hit.doc.id, 1.0) * (1 - p)
                if hit.doc.id in best:
                    best[hit.doc.id].scores.update(hit.scores)
                else:
                    best[hit.doc.id] = Hit(doc=hit.doc, score=0.0, scores=dict(hit.scores))
        for doc_id, hit in best.items():
            hit.score = 1 - miss[doc_id]
        return sorted(best.values(), key=lambda h: (-h.score, h.doc.id))


# ---- document pages, late interaction ---------------------------------------------


class PageRetriever(Retriever):
    """ColPali-style page search: pooled-vector candidates, then exact MaxSim rescoring.

    The store's page field gives `depth` candidates by the mean-pooled query against
    mean-pooled pages; their token matrices come from the side table and are scored
    by MaxSim, which is the final score.
    """

    name = "page-maxsim"

    def __init__(
        self,
        store: Store,
        encoder: Any,
        table: Any,
        field: str = "page",
        depth: int = 100,
    ) -> None:
        self.store, self.encoder, self.table = store, encoder, table
        self.field, self.depth = field, depth

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        from mmrag.index.multivector import pooled
        from mmrag.models.page_encoders import maxsim

        qs = [as_query(q) for q in queries]
        matrices = self.encoder.encode_queries([q.text for q in qs])
        first = pooled(matrices)
        out = []
        for q, query, vec in zip(qs, matrices, first, strict=True):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                filters = with_modalities(q.filters, (Modality.PAGE, Modality.IMAGE))
                (cands,) = self.store.search_dense(self.field, vec[None, :], self.depth, filters)
                stored = self.table.get([d.id for d, _ in cands])
                docs = [d for d, _ in cands if d.id in stored]
                scores = maxsim(query, [stored[d.id] for d in docs]) if docs else np.zeros(0)
                order = np.argsort(-scores, kind="stable")[:k]
                scored = [(docs[i], float(scores[i])) for i in order]
            report.n_in = len(cands)
            out.append(to_ranked(q, scored, report))
        return out
