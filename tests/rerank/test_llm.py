"""LLM rerankers with the real local SmolLM2 on a real DL19 query, checked against the same
model's own unbatched calls; robustness to garbage replies and to failing endpoints."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from mmrag.models.lm import Completion, LanguageModel, Message, Usage
from mmrag.rerank import RERANKERS
from mmrag.rerank.llm_listwise import parse_permutation, sliding_order
from mmrag.types import Ranked
from tests.rerank.conftest import dl19_ranked

QID = "264014"  # "how long is life cycle of flea"
SHORT = {"max_passage_words": 30}


@pytest.fixture(scope="module")
def lm():
    from mmrag.models.local_lm import LocalLM

    return LocalLM()


@pytest.fixture(scope="module")
def ranked(dl19) -> Ranked:
    return dl19_ranked(dl19, QID, depth=4)


def _complete(out: Ranked, ranked: Ranked) -> None:
    assert sorted(out.ids()) == sorted(ranked.ids())
    assert [h.score for h in out.hits] == sorted((h.score for h in out.hits), reverse=True)


def test_pointwise_scores_are_the_models_yes_no_log_odds(lm, ranked) -> None:
    reranker = RERANKERS.create("llm-pointwise", lm=lm, batch_size=3, **SHORT)
    out = reranker.rerank(ranked)
    _complete(out, ranked)
    report = out.reports[-1]
    assert report.model_calls == 4 and report.tokens > 0 and not report.errors
    texts = reranker.passages([h.text for h in ranked.hits], report)
    for hit, text in zip(ranked.hits, texts, strict=True):
        lp = lm.next_token_logprobs(reranker.messages(ranked.query.text, text), ["Yes", "No"])
        got = next(h.score for h in out.hits if h.doc.id == hit.doc.id)
        assert got == pytest.approx(lp["Yes"] - lp["No"], abs=1e-3)


def test_first_ranks_a_window_by_identifier_logits_in_one_call(lm, ranked) -> None:
    reranker = RERANKERS.create("first", lm=lm, window=4, step=2, **SHORT)
    out = reranker.rerank(ranked)
    _complete(out, ranked)
    assert out.reports[-1].model_calls == 1
    texts = reranker.passages([h.text for h in ranked.hits], out.reports[-1])
    lp = lm.next_token_logprobs(reranker.messages(ranked.query.text, texts), list("ABCD"))
    expected = [ranked.hits[i].doc.id for i in np.argsort([-lp[c] for c in "ABCD"], kind="stable")]
    assert out.ids() == expected


class RecordingLM(LanguageModel):
    """The real model, with every chat reply kept: the test checks the reranker followed
    the reply it got, without generating it a second time."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner, self.name, self.usage = inner, inner.name, inner.usage
        self.replies: list[str] = []

    def chat(self, messages, max_tokens=256, temperature=0.0, stop=None) -> Completion:
        reply = self.inner.chat(messages, max_tokens, temperature, stop)
        self.replies.append(reply.text)
        return reply

    def next_token_logprobs(self, messages, candidates) -> dict[str, float]:
        return self.inner.next_token_logprobs(messages, candidates)


def test_listwise_follows_the_models_permutation(lm, ranked) -> None:
    recorder = RecordingLM(lm)
    reranker = RERANKERS.create(
        "llm-listwise", lm=recorder, window=4, step=2, max_tokens=20, **SHORT
    )
    out = reranker.rerank(ranked)
    _complete(out, ranked)
    report = out.reports[-1]
    assert report.model_calls == 1 and report.tokens > 0
    (reply,) = recorder.replies
    perm, _ = parse_permutation(reply, 4)
    if report.extra["parse"]["unparsed_windows"]:
        assert out.ids() == ranked.ids()  # a reply with no identifiers keeps the input order
    else:
        assert out.ids() == [ranked.hits[i].doc.id for i in perm]


def test_pairwise_compares_both_orders(lm, ranked) -> None:
    three = ranked.top(3)
    allpairs = RERANKERS.create("llm-pairwise", lm=lm, method="allpairs", **SHORT)
    out = allpairs.rerank(three)
    _complete(out, three)
    assert out.reports[-1].model_calls == 6  # 3 pairs x 2 orders
    sliding = RERANKERS.create("llm-pairwise", lm=lm, method="sliding", passes=1, **SHORT)
    out = sliding.rerank(three)
    _complete(out, three)
    assert out.reports[-1].model_calls == 4  # one bubble pass: 2 comparisons x 2 orders


# ---- parsing and sliding windows ------------------------------------------------------


def test_parse_permutation_never_loses_or_duplicates() -> None:
    perm, issues = parse_permutation("[3] > [3] > [9] > banana > [1] > 0", 4)
    assert perm == [2, 0, 1, 3]
    assert issues == {"unknown": 2, "repeated": 1, "missing": 2}
    assert parse_permutation("", 3) == ([0, 1, 2], {"unknown": 0, "repeated": 0, "missing": 3})
    assert parse_permutation("2 > 1 > 3", 3)[0] == [1, 0, 2]


def test_sliding_windows_move_the_best_from_the_bottom_to_the_top() -> None:
    windows: list[list[int]] = []

    def by_index_descending(ids: list[int]) -> list[int]:
        windows.append(list(ids))
        return sorted(ids, reverse=True)

    order = sliding_order(10, 4, 2, by_index_descending)
    assert order[0] == 9  # the last candidate bubbled to the top
    assert sorted(order) == list(range(10))
    assert windows[0] == [6, 7, 8, 9] and len(windows) == 4


class ScriptedLM(LanguageModel):
    """Replies from a fixed script, like a broken endpoint would: for the parsing cases."""

    def __init__(self, replies: Sequence[str]) -> None:
        self.name = "scripted"
        self.usage = Usage()
        self.replies = list(replies)

    def chat(self, messages, max_tokens=256, temperature=0.0, stop=None) -> Completion:
        reply = Completion(self.replies.pop(0) if self.replies else "", 10, 5)
        self.usage.add(reply)
        return reply

    def next_token_logprobs(self, messages: Sequence[Message], candidates) -> dict[str, float]:
        self.usage.add(Completion("", 10, 1))
        return {"garbage": -1.0}


def test_listwise_with_garbage_replies_keeps_every_document(dl19) -> None:
    ranked = dl19_ranked(dl19, QID, depth=6)
    replies = ["[4] > [4] > [17] > [2] > nonsense", "I cannot rank these, sorry."]
    reranker = RERANKERS.create("llm-listwise", lm=ScriptedLM(replies), window=4, step=2)
    out = reranker.rerank(ranked)
    _complete(out, ranked)
    report = out.reports[-1]
    assert report.model_calls == 2
    assert report.extra["parse"] == {
        "unknown": 1,
        "repeated": 1,
        "missing": 6,  # 2 in the first window, all 4 in the unparsable second one
        "unparsed_windows": 1,
    }
    assert any("no identifiers" in e for e in report.errors)
    # window 1 (candidates 2..5) became 5, 3, 2, 4; window 2 (0, 1, 5, 3) was left alone
    ids = ranked.ids()
    assert out.ids() == [ids[i] for i in (0, 1, 5, 3, 2, 4)]


def test_first_and_pointwise_with_garbage_logprobs_keep_the_input_order(dl19) -> None:
    ranked = dl19_ranked(dl19, QID, depth=5)
    for reranker in (
        RERANKERS.create("first", lm=ScriptedLM([]), window=5, step=2),
        RERANKERS.create("llm-pointwise", lm=ScriptedLM([])),
        RERANKERS.create("llm-pairwise", lm=ScriptedLM([]), method="allpairs"),
    ):
        out = reranker.rerank(ranked)
        assert out.ids() == ranked.ids()
        assert out.reports[-1].errors


# ---- endpoints that fail --------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A local TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("name", ["llm-pointwise", "llm-listwise", "first", "llm-pairwise"])
def test_unreachable_and_timing_out_endpoints_fall_back_to_input_order(
    dl19, silent_server, name
) -> None:
    ranked = dl19_ranked(dl19, QID, depth=3)
    for port, timeout in ((_closed_port(), 5.0), (silent_server, 0.3)):
        reranker = RERANKERS.create(
            name, base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=timeout, retries=0
        )
        out = reranker.rerank(ranked)
        assert out.ids() == ranked.ids()
        assert out.reports[-1].errors


@pytest.fixture(params=["not json", "json without an answer"])
def garbage_server(request) -> Iterator[int]:
    """A local OpenAI-compatible endpoint that answers 200 with garbage: a non-JSON body,
    or a chat completion whose text names no passage and which carries no logprobs."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if request.param == "not json":
        body = b"<html>upstream busy</html>"
    else:
        body = json.dumps(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "I like turtles."}}
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 4},
            }
        ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", ["llm-pointwise", "llm-listwise", "first", "llm-pairwise"])
def test_garbage_answering_endpoints_fall_back_to_input_order(dl19, garbage_server, name) -> None:
    ranked = dl19_ranked(dl19, QID, depth=3)
    reranker = RERANKERS.create(
        name, base_url=f"http://127.0.0.1:{garbage_server}/v1", model="m", retries=0
    )
    out = reranker.rerank(ranked)
    assert out.ids() == ranked.ids()
    assert out.reports[-1].errors
