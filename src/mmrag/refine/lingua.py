"""LongLLMLingua-style token pruning with a small causal LM, batched and CJK-safe.

Three stages share one budget (the passage tokens left after the instruction and the
question, which are never cut):

1. Coarse: each passage is scored by how likely it makes the question (mean log p of
   the question, plus a "the answer is in the documents" condition, given the passage:
   LongLLMLingua's question-conditioned perplexity). Passages are kept best first until
   `coarse_slack` x budget; the rest are dropped whole. `reorder` puts the best first.
2. Sentences: within kept passages, sentences are ranked by contrastive perplexity —
   how much more predictable their tokens become once the question is known,
   log p(x_i | question, x_<i) - log p(x_i | x_<i) — and kept to `sentence_slack` x budget.
3. Tokens: words (whole CJK words or characters, never part of a multibyte character)
   are scored by self-information plus contrastive gain, with a bonus for passages the
   coarse stage ranked higher (the dynamic compression ratio), and the best words are
   kept up to the budget with one global threshold.

Long passages are scored in segments of at most `segment_tokens`; all segments go
through the model in two batched passes ([segment, question] and [question, segment]),
so there is no per-segment sequential loop and no per-token Python post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mmrag.models.causal_lm import DEFAULT_LM
from mmrag.refine.base import Budget, Selection, TextRefiner, TokenCounter
from mmrag.refine.perplexity import Encoded, PerplexityScorer
from mmrag.refine.sentences import split_sentences, word_spans
from mmrag.types import Query

CONDITION = "We can get the answer to this question in the given documents."


@dataclass(slots=True)
class _Segment:
    passage: int
    lo: int  # token range in the passage's encoding
    hi: int


def _token_units(offsets: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Index of the span holding each token's last character, or -1 (whitespace tokens)."""
    if len(spans) == 0 or len(offsets) == 0:
        return np.full(len(offsets), -1, dtype=np.int64)
    last = np.maximum(offsets[:, 1] - 1, offsets[:, 0])
    unit = np.searchsorted(spans[:, 0], last, side="right") - 1
    inside = (unit >= 0) & (last < spans[np.maximum(unit, 0), 1])
    return np.where(inside, unit, -1)


def _mean_by(index: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` grouped by `index` (entries with index -1 ignored) and group sizes."""
    ok = index >= 0
    counts = np.bincount(index[ok], minlength=n).astype(np.float64)
    sums = np.bincount(index[ok], weights=values[ok], minlength=n)
    return np.divide(sums, counts, out=np.zeros(n), where=counts > 0), counts


def _keep_best(scores: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """Boolean mask of the highest-scoring items whose costs sum to at most `budget`."""
    order = np.argsort(-scores, kind="stable")
    fits = np.cumsum(costs[order]) <= budget
    keep = np.zeros(len(scores), dtype=bool)
    keep[order[fits]] = True
    if not keep.any() and len(scores):
        keep[order[0]] = True  # never return an empty context
    return keep


class LinguaRefiner(TextRefiner):
    """LongLLMLingua: coarse passage ranking, sentence filter and token pruning by a causal LM."""

    name = "lingua"

    def __init__(
        self,
        model: str = DEFAULT_LM,
        instruction: str = "",
        coarse: bool = True,
        reorder: bool = False,
        coarse_slack: float = 1.5,
        sentence_slack: float = 1.15,
        contrast_weight: float = 1.0,
        dynamic: float = 0.3,
        segment_tokens: int = 512,
        window: int | None = None,
        batch_tokens: int = 4096,
        condition: str = CONDITION,
        coarse_by: str = "lm",
        encoder: str = "use-multilingual",
    ) -> None:
        super().__init__(instruction)
        if coarse_by not in ("lm", "embedding"):
            raise ValueError(f"coarse_by is 'lm' or 'embedding', not {coarse_by!r}")
        # "embedding": passages are ranked by a sentence encoder instead of the LM, so the
        # LM reads only the passages that survive the coarse stage (fewer model tokens).
        self.coarse_by = coarse_by
        self.encoder_name = encoder
        if coarse_slack < 1.0 or sentence_slack < 1.0:
            raise ValueError("coarse_slack and sentence_slack must be >= 1")
        if segment_tokens < 32:
            raise ValueError("segment_tokens must be at least 32")
        self.model = model
        self.coarse = coarse
        self.reorder = reorder
        self.coarse_slack = coarse_slack
        self.sentence_slack = sentence_slack
        self.contrast_weight = contrast_weight
        self.dynamic = dynamic
        self.segment_tokens = segment_tokens
        self.window = window
        self.batch_tokens = batch_tokens
        self.condition = condition

    @cached_property
    def scorer(self) -> PerplexityScorer:
        return PerplexityScorer(self.model, batch_tokens=self.batch_tokens, window=self.window)

    def counter(self) -> TokenCounter:
        return TokenCounter(self.scorer.tokenizer)

    # -- stages ------------------------------------------------------------------------

    def _segments(
        self, encoded: list[Encoded], question_len: int, warnings: list[str]
    ) -> list[_Segment]:
        size = min(self.segment_tokens, self.scorer.window - question_len - 4)
        if size < 16:
            raise ValueError(
                f"the question ({question_len} tokens) leaves no room in the LM window "
                f"({self.scorer.window})"
            )
        segments = []
        for p, enc in enumerate(encoded):
            if len(enc) > self.scorer.window - question_len:
                warnings.append(
                    f"passage {p} has {len(enc)} tokens, more than the LM window "
                    f"({self.scorer.window}); scored in pieces of {size}"
                )
            segments.extend(
                _Segment(p, lo, min(lo + size, len(enc))) for lo in range(0, len(enc), size)
            )
        return segments

    def _coarse_scores(
        self, encoded: list[Encoded], segments: list[_Segment], question: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per passage: mean log p(question | passage) (best segment), and plain token log p."""
        sequences = [[encoded[s.passage].ids[s.lo : s.hi], question] for s in segments]
        scored = self.scorer.logprobs(sequences)
        plain = [np.full(len(e), np.nan, dtype=np.float32) for e in encoded]
        coarse = np.full(len(encoded), -np.inf)
        for s, (segment_lp, question_lp) in zip(segments, scored, strict=True):
            plain[s.passage][s.lo : s.hi] = segment_lp
            coarse[s.passage] = max(coarse[s.passage], float(question_lp.mean()))
        return coarse, plain

    def _embedding_coarse(self, query: Query, texts: list[str]) -> np.ndarray:
        from mmrag.models.text import load_text_encoder

        encoder = load_text_encoder(self.encoder_name)
        vectors = np.asarray(encoder.encode([t or " " for t in texts]))
        question = np.asarray(encoder.encode_queries([query.text or " "]))[0]
        return vectors @ question

    def _sentence_similarity(
        self, query: Query, texts: list[str], passages: np.ndarray
    ) -> dict[int, np.ndarray]:
        from mmrag.models.text import load_text_encoder

        encoder = load_text_encoder(self.encoder_name)
        pieces = {int(p): split_sentences(texts[p]) for p in passages.tolist()}
        flat = [texts[p][a:b] or " " for p, spans in pieces.items() for a, b in spans]
        if not flat:
            return {p: np.zeros(0) for p in pieces}
        question = np.asarray(encoder.encode_queries([query.text or " "]))[0]
        sims = np.asarray(encoder.encode(flat)) @ question
        out, start = {}, 0
        for p, spans in pieces.items():
            out[p] = sims[start : start + len(spans)]
            start += len(spans)
        return out

    def _plain(self, encoded: list[Encoded], segments: list[_Segment]) -> list[np.ndarray]:
        sequences = [[encoded[s.passage].ids[s.lo : s.hi]] for s in segments]
        out = [np.full(len(e), np.nan, dtype=np.float32) for e in encoded]
        for s, (segment_lp,) in zip(segments, self.scorer.logprobs(sequences), strict=True):
            out[s.passage][s.lo : s.hi] = segment_lp
        return out

    def _conditioned(
        self, encoded: list[Encoded], segments: list[_Segment], question: np.ndarray
    ) -> list[np.ndarray]:
        sequences = [[question, encoded[s.passage].ids[s.lo : s.hi]] for s in segments]
        out = [np.full(len(e), np.nan, dtype=np.float32) for e in encoded]
        for s, (_, segment_lp) in zip(segments, self.scorer.logprobs(sequences), strict=True):
            out[s.passage][s.lo : s.hi] = segment_lp
        return out

    def select(
        self, query: Query, texts: list[str], tokens: list[int], budget: Budget
    ) -> Selection:
        everything = [[(0, len(t))] if t.strip() else [] for t in texts]
        if budget.target >= budget.passage_tokens_in:
            return Selection(everything, extra={"stages": "nothing to cut"})
        warnings: list[str] = []
        calls_before = self.scorer.forward_calls
        encoded = self.scorer.encode(texts)
        prompt, conditioned_prompt = self.scorer.encode(
            [f"{query.text}\n\n", f"\n\n{query.text} {self.condition}".rstrip()]
        )
        segments = self._segments(encoded, max(len(prompt), len(conditioned_prompt)), warnings)

        # 1. coarse: rank passages by question likelihood, drop the tail beyond the slack.
        if self.coarse_by == "embedding":
            coarse, plain = self._embedding_coarse(query, texts), []
        else:
            coarse, plain = self._coarse_scores(encoded, segments, conditioned_prompt.ids)
        ranking = np.argsort(-coarse, kind="stable")
        lengths = np.asarray([len(e) for e in encoded])
        if self.coarse:
            within = (
                np.cumsum(lengths[ranking]) - lengths[ranking] < budget.target * self.coarse_slack
            )
            kept_passages = ranking[within]
        else:
            kept_passages = ranking
        rank_of = np.full(len(texts), len(texts), dtype=np.int64)
        rank_of[kept_passages] = np.arange(len(kept_passages))

        # 2. contrastive perplexity on the kept passages only.
        kept_set = set(kept_passages.tolist())
        kept_segments = [s for s in segments if s.passage in kept_set]
        sentence_scores = None
        if self.coarse_by == "embedding":
            # Question awareness from the encoder at passage and sentence level; the LM
            # reads the kept passages once, for the tokens' self-information.
            plain = self._plain(encoded, kept_segments)
            conditioned = plain
            sentence_scores = self._sentence_similarity(query, texts, kept_passages)
        else:
            conditioned = self._conditioned(encoded, kept_segments, prompt.ids)
        spans = self._prune(
            texts,
            encoded,
            kept_passages,
            rank_of,
            plain,
            conditioned,
            budget.target,
            sentence_scores,
        )
        return Selection(
            spans,
            order=kept_passages.tolist() if self.reorder else None,
            model_calls=self.scorer.forward_calls - calls_before,
            warnings=warnings,
            extra={
                "coarse_scores": [round(float(c), 4) for c in coarse],
                "passages_after_coarse": len(kept_passages),
            },
        )

    def _prune(
        self,
        texts: list[str],
        encoded: list[Encoded],
        kept_passages: np.ndarray,
        rank_of: np.ndarray,
        plain: list[np.ndarray],
        conditioned: list[np.ndarray],
        target: int,
        sentence_scores: dict[int, np.ndarray] | None = None,
    ) -> list[list[tuple[int, int]]]:
        """Sentence filter, then word pruning, over all kept passages at once."""
        n_kept = max(len(kept_passages), 1)
        # Flatten every kept passage's words and sentences into global arrays.
        unit_spans, unit_passage, unit_sentence, unit_score, unit_cost, sentence_gain = (
            [],
            [],
            [],
            [],
            [],
            [],
        )
        sentence_cost: list[np.ndarray] = []
        sentence_rank: list[np.ndarray] = []
        n_sentences = 0
        for p in kept_passages.tolist():
            text, enc = texts[p], encoded[p]
            words = word_spans(text)
            sentences = np.asarray(split_sentences(text), dtype=np.int64).reshape(-1, 2)
            token_word = _token_units(enc.offsets, words)
            surprisal = -np.nan_to_num(plain[p], nan=0.0)
            gain = np.nan_to_num(conditioned[p] - plain[p], nan=0.0)
            score = surprisal + self.contrast_weight * gain
            word_score, word_cost = _mean_by(token_word, score, len(words))
            word_sentence = _token_units(
                np.stack([words[:, 0], words[:, 0] + 1], axis=1), sentences
            )
            token_sentence = _token_units(enc.offsets, sentences)
            s_gain, s_cost = _mean_by(token_sentence, gain, len(sentences))
            if sentence_scores is not None:
                s_gain = sentence_scores[p]
            unit_spans.append(words)
            unit_passage.append(np.full(len(words), p))
            unit_sentence.append(np.where(word_sentence >= 0, word_sentence + n_sentences, -1))
            unit_score.append(word_score)
            unit_cost.append(np.maximum(word_cost, 1.0))
            sentence_gain.append(s_gain)
            sentence_cost.append(s_cost)
            sentence_rank.append(np.full(len(sentences), rank_of[p]))
            n_sentences += len(sentences)
        spans = np.concatenate(unit_spans)
        passage = np.concatenate(unit_passage)
        sentence = np.concatenate(unit_sentence)
        score = np.concatenate(unit_score)
        cost = np.concatenate(unit_cost)
        # The dynamic ratio: passages ranked higher by the coarse stage keep more.
        bonus = self.dynamic * (1.0 - 2.0 * rank_of / max(n_kept - 1, 1)) if n_kept > 1 else 0.0

        # 2. sentence filter by mean contrastive gain (plus the rank bonus).
        s_gain = np.concatenate(sentence_gain)
        s_cost = np.concatenate(sentence_cost)
        s_rank = np.concatenate(sentence_rank)
        s_bonus = self.dynamic * (1.0 - 2.0 * s_rank / max(n_kept - 1, 1)) if n_kept > 1 else 0.0
        keep_sentence = _keep_best(
            s_gain + s_bonus * (s_gain.std() if len(s_gain) > 1 else 0.0),
            s_cost,
            target * self.sentence_slack,
        )
        alive = (sentence >= 0) & keep_sentence[np.maximum(sentence, 0)]

        # 3. word pruning with one global threshold over the surviving words.
        word_bonus = bonus[passage] if isinstance(bonus, np.ndarray) else 0.0
        final = np.where(
            alive, score + word_bonus * (score.std() if len(score) > 1 else 0.0), -np.inf
        )
        keep = _keep_best(final, np.where(alive, cost, np.inf), target) & alive
        if not keep.any() and len(final):
            keep[int(np.argmax(final))] = True
        out: list[list[tuple[int, int]]] = [[] for _ in texts]
        for i in np.flatnonzero(keep).tolist():
            out[int(passage[i])].append((int(spans[i, 0]), int(spans[i, 1])))
        return out


class FastLinguaRefiner(LinguaRefiner):
    """`lingua` with the question awareness moved to a sentence encoder: passages and
    sentences are ranked by similarity to the question, and the LM reads only the kept
    passages, once, for the tokens' self-information (bench/results/refine.json)."""

    name = "lingua-fast"

    def __init__(self, **params: object) -> None:
        params.setdefault("coarse_by", "embedding")
        super().__init__(**params)  # type: ignore[arg-type]
