"""The OpenAI-compatible face, called by the project's own OpenAI client and by plain HTTP,
answering through the pipeline with the real local Qwen2.5-0.5B."""

from __future__ import annotations

import json

from tests.server.conftest import KEY, Live, wait_idle

QUESTION = "Who invented the printing press?"


def _client(served: Live):  # type: ignore[no-untyped-def]
    from mmrag.models.openai_lm import OpenAICompatibleLM

    return OpenAICompatibleLM(
        base_url=f"{served.url}/v1", model="mmrag", api_key=KEY, timeout=120, retries=0
    )


def test_models_lists_the_served_model(served: Live) -> None:
    body = served.client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["mmrag"]


def test_the_openai_client_gets_an_answer_with_sources(served: Live) -> None:
    lm = _client(served)
    completion = lm.chat([{"role": "user", "content": QUESTION}], max_tokens=16)
    assert "Gutenberg" in completion.text
    assert "\n\nSources:\n[" in completion.text and "printing-press.txt" in completion.text
    assert completion.completion_tokens and completion.completion_tokens <= 16
    assert completion.prompt_tokens > 100
    assert lm.usage.calls == 1


def test_the_openai_client_streams(served: Live) -> None:
    lm = _client(served)
    pieces = list(lm.stream([{"role": "user", "content": QUESTION}], max_tokens=16))
    assert len(pieces) > 3, "the answer arrives in pieces"
    text = "".join(pieces)
    assert "Gutenberg" in text and "Sources:" in text


def test_plain_http_stream_is_chat_completion_chunks(served: Live) -> None:
    request = {
        "model": "mmrag",
        "stream": True,
        "max_tokens": 8,
        # content as parts, with the earlier turns: the last user message is the question
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": [{"type": "text", "text": "What causes ocean tides?"}]},
        ],
    }
    with served.client.stream("POST", "/v1/chat/completions", json=request) as r:
        assert r.status_code == 200
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip()
    wait_idle(served)


def test_non_stream_response_shape_and_usage(served: Live) -> None:
    r = served.client.post(
        "/v1/chat/completions",
        json={
            "model": "mmrag",
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 12,
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 12
    for c in body["mmrag"]["citations"]:
        assert f"[{c['number']}]" in choice["message"]["content"]


def test_unknown_model_and_missing_question(served: Live) -> None:
    r = served.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = served.client.post(
        "/v1/chat/completions",
        json={"model": "mmrag", "messages": [{"role": "system", "content": "only a system turn"}]},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "messages"]
