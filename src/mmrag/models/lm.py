"""The `LanguageModel` interface shared by LLM rerankers, refiners and generators.

Two implementations stand behind it: a local transformers model (`LocalLM`) and any
OpenAI-compatible chat endpoint (`OpenAICompatibleLM`). Both count calls and tokens so
each stage can report its cost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# {"role": "system" | "user" | "assistant", "content": str or a list of OpenAI content parts}
Message = dict[str, Any]


@dataclass(slots=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


@dataclass(slots=True)
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, c: Completion) -> None:
        self.calls += 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LanguageModel(ABC):
    """A chat model. `usage` accumulates over the model's life; stages read deltas."""

    name: str
    usage: Usage

    @abstractmethod
    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Completion: ...

    def chat_many(
        self,
        conversations: Sequence[Sequence[Message]],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[Completion]:
        """Several independent chats; implementations batch (local) or run concurrently (remote)."""
        return [self.chat(c, max_tokens, temperature, stop) for c in conversations]

    @abstractmethod
    def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        """Log-probability of each candidate string as the first token of the reply.

        Used by yes/no pointwise scoring and FIRST single-token listwise ranking.
        Candidates that are not a single token are scored by their first token.
        """

    def next_token_logprobs_many(
        self, conversations: Sequence[Sequence[Message]], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """`next_token_logprobs` for several prompts; the local model batches them."""
        return [self.next_token_logprobs(c, candidates) for c in conversations]

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Text pieces as they are generated; the default yields the whole reply once."""
        yield self.chat(messages, max_tokens, temperature, stop).text
