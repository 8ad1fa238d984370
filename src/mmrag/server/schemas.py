"""Request bodies. Pydantic validates them, so malformed JSON is a 422 naming the field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No length limit here: the body limit bounds it, and a long query is cut, not refused.
    query: str = Field(min_length=1, description="What to look for.")
    k: int = Field(10, ge=1, description="How many passages (at most the server's search_k_max).")
    retriever: str | None = Field(None, description="A retriever name; default: the pipeline's.")
    filters: dict[str, Any] | None = Field(None, description="Metadata filter, Mongo-like.")


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    stream: bool = Field(False, description="Answer as server-sent events.")
    max_tokens: int | None = Field(None, ge=1, le=4096, description="Generation limit.")
    filters: dict[str, Any] | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat request; fields mmrag does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
