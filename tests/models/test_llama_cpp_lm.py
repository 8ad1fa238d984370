"""The packaged Qwen2.5-0.5B-Instruct on llama.cpp behind the `LanguageModel` interface."""

from __future__ import annotations

import pytest

from mmrag.errors import ConfigError

pytest.importorskip("llama_cpp", reason="llama.cpp runtime not built (make llama-runtime)")

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def lm():  # type: ignore[no-untyped-def]
    from mmrag.models.llama_cpp_lm import LlamaCppLM

    return LlamaCppLM("qwen2.5-coder-0.5b-instruct", context=2048, threads=1)


def test_chat_answers_and_counts_tokens(lm) -> None:  # type: ignore[no-untyped-def]
    calls = lm.usage.calls
    reply = lm.chat(QUESTION, max_tokens=8)
    assert "Paris" in reply.text
    assert reply.prompt_tokens > 10 and 0 < reply.completion_tokens <= 8
    assert lm.usage.calls == calls + 1


def test_stream_equals_chat_and_closing_it_stops_the_model(lm) -> None:  # type: ignore[no-untyped-def]
    messages = [{"role": "user", "content": "List three colours, separated by commas."}]
    assert "".join(lm.stream(messages, 12)) == lm.chat(messages, 12).text
    before = lm.usage.completion_tokens
    stream = lm.stream([{"role": "user", "content": "Count from 1 to 200."}], 300)
    next(stream)
    stream.close()
    assert lm.usage.completion_tokens - before < 20


def test_next_token_logprobs_prefer_the_right_answer(lm) -> None:  # type: ignore[no-untyped-def]
    ask = [{"role": "user", "content": "What is 2 + 2? Reply with one digit."}]
    lp = lm.next_token_logprobs(ask, ["4", "7"])
    assert lp["4"] > lp["7"] + 2
    assert all(v <= 0 for v in lp.values())


def test_over_long_prompts_are_cut_to_the_window(lm) -> None:  # type: ignore[no-untyped-def]
    long = [{"role": "user", "content": "word " * 5000 + "What is the capital of France?"}]
    ids = lm.prompt_ids(long, reserve=16)
    assert len(ids) == 2048 - 16
    with pytest.raises(ConfigError):
        lm.prompt_ids(long, reserve=2000)
    with pytest.raises(ConfigError):
        lm.chat(QUESTION, max_tokens=0)


def test_a_path_that_is_no_gguf_file_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mmrag.models.llama_cpp_lm import LlamaCppLM

    with pytest.raises(ConfigError, match="GGUF"):
        LlamaCppLM(str(tmp_path / "missing.gguf"))
