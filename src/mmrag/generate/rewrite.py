"""Follow-up questions made standalone before retrieval ("When did he build it?" ->
"When did Johannes Gutenberg build the printing press?"): a retriever sees one query,
not the conversation, so the pronouns must be resolved first."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.models.lm import LanguageModel, Message

_SYSTEM = (
    "You rewrite the last question of a conversation so that it can be understood alone. "
    "Replace pronouns and vague references with the names and things they refer to in the "
    "conversation. Do not answer it. Reply with the rewritten question only."
)
_TURNS = 6  # earlier turns shown to the model: enough for a reference, bounded cost
_TURN_CHARS = 600


def _text(message: Message) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return " ".join(str(content).split())


def standalone_question(
    lm: LanguageModel, history: Sequence[Message], question: str, max_tokens: int = 48
) -> str:
    """`question` rewritten using `history` (earlier turns, oldest first).

    Without an earlier user turn the question is returned as it is, with no model call;
    a reply that is empty, several lines of chatter or far longer than the question
    falls back to the question itself.
    """
    earlier = [m for m in history if m.get("role") in {"user", "assistant"} and _text(m)]
    if not any(m.get("role") == "user" for m in earlier):
        return question
    turns = "\n".join(f"{m['role']}: {_text(m)[:_TURN_CHARS]}" for m in earlier[-_TURNS:])
    messages = [
        {"role": "system", "content": _SYSTEM},
        {
            "role": "user",
            "content": (
                f"Conversation:\n{turns}\n\nLast question: {question}\n\nRewritten question:"
            ),
        },
    ]
    reply = lm.chat(messages, max_tokens=max_tokens).text.strip()
    line = reply.splitlines()[0].strip().strip('"').strip() if reply else ""
    for prefix in ("Rewritten question:", "Question:"):
        if line.lower().startswith(prefix.lower()):
            line = line[len(prefix) :].strip()
    if not line or len(line) > 4 * len(question) + 80:
        return question
    return line
