"""Text → sound search: in an audio–text (CLAP) field, or zero-shot with Whisper.

`AudioTextRetriever` embeds the query with the field's own text tower (rebuilt from
the field's stored encoder info) and searches AUDIO documents. `SoundLikelihoodRetriever`
needs no audio encoder: it rescores text-search candidates by Whisper's likelihood of
the query as a sound tag. Speech is found through the text field like any text.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from mmrag.errors import IngestError
from mmrag.index.audio_embedder import span_samples
from mmrag.index.base import Store
from mmrag.index.fields import field_spec, load_encoder
from mmrag.media.decode import decode_audio
from mmrag.models.clap import ClapEncoder
from mmrag.models.whisper import SAMPLE_RATE, EncodedAudio, WhisperTranscriber
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.retrieve.crossmodal import with_modalities
from mmrag.types import Document, Modality, Query, Ranked, StageReport, timed


class AudioTextRetriever(Retriever):
    """Text queries against the audio field ("a dog barking" → clips)."""

    name = "audio-text"

    def __init__(
        self,
        store: Store,
        field: str = "audio",
        encoder: ClapEncoder | None = None,
        modalities: Sequence[Modality] = (Modality.AUDIO,),
    ) -> None:
        spec = field_spec(store, field, hint="index with --audio-encoder")
        self.store = store
        self.field = field
        self.encoder = encoder or load_encoder(spec)
        self.modalities = tuple(modalities)

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        vectors = self.encoder.encode_texts([q.text for q in qs])
        out = []
        for q, vec in zip(qs, vectors, strict=True):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                filters = with_modalities(q.filters, self.modalities)
                (scored,) = self.store.search_dense(self.field, vec[None, :], k, filters)
            out.append(to_ranked(q, scored, report))
        return out


class SoundLikelihoodRetriever(Retriever):
    """Zero-shot text → sound search: a first stage (text search over transcripts and sound
    tags, AUDIO documents only) proposes `depth` clips, and Whisper rescores each by how
    likely it would have written the query as a sound tag for it, "(dog barking)"
    (query likelihood; see WhisperTranscriber.text_likelihood). The score is that mean
    token log-probability.

    Encoder outputs are cached per document (float16, `cache_size` documents), so later
    queries cost one decoder pass per candidate.
    """

    name = "sound-likelihood"

    def __init__(
        self,
        store: Store,
        first: Retriever | None = None,
        transcriber: WhisperTranscriber | str = "tiny.en",
        depth: int = 50,
        cache_size: int = 256,
    ) -> None:
        from mmrag.retrieve.dense import DenseRetriever
        from mmrag.retrieve.sparse import BM25Retriever

        self.store = store
        self.first = first or (
            DenseRetriever(store) if "text" in store.fields() else BM25Retriever(store)
        )
        self.whisper = (
            transcriber
            if isinstance(transcriber, WhisperTranscriber)
            else WhisperTranscriber(transcriber)
        )
        self.depth = depth
        self.cache_size = cache_size
        self._encoded: OrderedDict[str, EncodedAudio] = OrderedDict()

    def _encode(self, doc: Document) -> EncodedAudio:
        cached = self._encoded.get(doc.id)
        if cached is not None:
            self._encoded.move_to_end(doc.id)
            return EncodedAudio(cached.states.astype(np.float32), cached.frames)
        if not doc.media:
            raise IngestError(doc.id, "an audio document without its file (media)")
        samples = decode_audio(doc.media, SAMPLE_RATE).samples
        encoded = self.whisper.encode(span_samples(doc, samples, SAMPLE_RATE))
        self._encoded[doc.id] = EncodedAudio(encoded.states.astype(np.float16), encoded.frames)
        while len(self._encoded) > self.cache_size:
            self._encoded.popitem(last=False)
        return encoded

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        """The first stage's top `depth` reordered by likelihood; deeper first-stage hits
        (when k > depth) follow in their own order, below every rescored one."""
        qs = [as_query(q) for q in queries]
        audio_only = [
            Query(text=q.text, id=q.id, filters=with_modalities(q.filters, (Modality.AUDIO,)))
            for q in qs
        ]
        firsts = self.first.retrieve_many(audio_only, max(k, self.depth))
        out = []
        for q, first in zip(qs, firsts, strict=True):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                docs = [h.doc for h in first.hits]
                head, tail = docs[: self.depth], docs[self.depth :]
                scores = [
                    float(self.whisper.text_likelihood(self._encode(d), [q.text])[0]) for d in head
                ]
                order = np.argsort(-np.asarray(scores), kind="stable")
                scored = [(head[i], scores[i]) for i in order]
                floor = min(scores, default=0.0)
                scored += [(d, floor - 1.0 - i) for i, d in enumerate(tail)]
            report.n_in = len(docs)
            report.model_calls = len(head)
            out.append(to_ranked(q, scored[:k], report))
        return out
