"""The local SmolLM2 behind the `LanguageModel` interface: batching must not change results."""

from __future__ import annotations

import math

import pytest

from mmrag.errors import ConfigError

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def lm():  # type: ignore[no-untyped-def]
    from mmrag.models.local_lm import LocalLM

    return LocalLM(batch_size=4)


def test_chat_answers_and_counts_tokens(lm) -> None:  # type: ignore[no-untyped-def]
    calls = lm.usage.calls
    reply = lm.chat(QUESTION, max_tokens=8)
    assert "Paris" in reply.text
    assert reply.prompt_tokens > 10 and 0 < reply.completion_tokens <= 8
    assert lm.usage.calls == calls + 1


def test_batched_generation_equals_single(lm) -> None:  # type: ignore[no-untyped-def]
    other = [{"role": "user", "content": "Name a fruit that is yellow. Be very brief please."}]
    single = [lm.chat(c, max_tokens=6).text for c in (QUESTION, other)]
    batched = [c.text for c in lm.chat_many([QUESTION, other], max_tokens=6)]
    assert batched == single


def test_next_token_logprobs_batched_equal_single_and_sum_below_one(lm) -> None:  # type: ignore[no-untyped-def]
    convs = [
        [{"role": "user", "content": "Is Paris in France? Answer Yes or No."}],
        [{"role": "user", "content": "Is the number 7 larger than 3000? Answer Yes or No."}],
        [{"role": "user", "content": "Say Yes."}],
        [{"role": "user", "content": "Say No."}],
    ]
    many = lm.next_token_logprobs_many(convs, ["Yes", "No"])
    one = [lm.next_token_logprobs(c, ["Yes", "No"]) for c in convs]
    for a, b in zip(many, one, strict=True):
        assert a.keys() == {"Yes", "No"}
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-3)
        assert math.exp(a["Yes"]) + math.exp(a["No"]) <= 1.0 + 1e-6
    # a 135M model is no judge of facts, but it follows the instruction's word
    assert many[2]["Yes"] > many[2]["No"] and many[3]["No"] > many[3]["Yes"]


def test_stream_pieces_join_to_the_chat_reply(lm) -> None:  # type: ignore[no-untyped-def]
    pieces = list(lm.stream(QUESTION, max_tokens=8))
    assert "".join(pieces).strip() == lm.chat(QUESTION, max_tokens=8).text.strip()


def test_stop_strings_cut_the_reply(lm) -> None:  # type: ignore[no-untyped-def]
    counting = [{"role": "user", "content": "Count from 1 to 10 separated by commas."}]
    full = lm.chat(counting, max_tokens=30).text
    assert "4" in full
    cut = lm.chat(counting, max_tokens=30, stop=["4"]).text
    assert "4" not in cut and full.startswith(cut)


def test_over_long_prompt_is_cut_in_the_middle(lm) -> None:  # type: ignore[no-untyped-def]
    long = [{"role": "user", "content": "word " * (lm.window + 500) + "What is 2+2?"}]
    ids = lm.prompt_ids(long, reserve=16)
    assert len(ids) == lm.window - 16
    assert lm.tokenizer.decode(ids[-20:]).count("2+2") == 1


def test_bad_parameters(lm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="max_tokens must be positive"):
        lm.chat(QUESTION, max_tokens=0)
