"""The answering prompt: numbered passages with their sources; images as image parts."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mmrag.generate.prompts import INSTRUCTION, STYLES, build_messages, image_part
from mmrag.index.media import media_resolver
from mmrag.types import Document, Hit, Modality, Span


def _hit(doc_id: str, text: str, **doc: object) -> Hit:
    return Hit(Document(id=doc_id, text=text, **doc), score=1.0)  # type: ignore[arg-type]


def test_passages_are_numbered_with_source_and_page() -> None:
    hits = [
        _hit("a#0", "Tides follow the moon.", source="/x/ocean-tides.html", span=Span(0, 22)),
        _hit(
            "b#3",
            "Gutenberg  printed\nbooks.",
            source="/x/press.pdf",
            span=Span(5, 30, page=2),
            metadata={"title": "Printing press"},
        ),
    ]
    system, user = build_messages("Who printed books?", hits)
    assert system["role"] == "system" and "square brackets" in system["content"]
    content = user["content"]
    assert isinstance(content, str)
    assert "Passage [1] (from ocean-tides.html): Tides follow the moon." in content
    # the title wins over the file name; whitespace is collapsed; pages are named
    assert "Passage [2] (from Printing press, p. 2): Gutenberg printed books." in content
    # the question comes first, and again after the passages
    assert content.startswith("Question: Who printed books?\n\nPassages:\nPassage [1]")
    assert content.index("[1]") < content.index("[2]")
    assert content.endswith("\n" + INSTRUCTION.replace("{question}", "Who printed books?"))


def test_each_answer_style_has_its_own_instruction() -> None:
    hits = [_hit("a", "Gutenberg printed books.")]
    short = build_messages("Who?", hits, system=STYLES["short"][0], instruction=STYLES["short"][1])
    full = build_messages(
        "Who?", hits, system=STYLES["sentence"][0], instruction=STYLES["sentence"][1]
    )
    assert "as few words as possible" in short[0]["content"]
    assert full[1]["content"].endswith(
        "one full sentence, followed by the number of the passage it comes from in square brackets."
    )
    # no worked example an answer could be copied from
    assert not any(ch.isdigit() for style in STYLES.values() for ch in style[0])


def test_worked_examples_are_earlier_turns_laid_out_like_the_question() -> None:
    examples = STYLES["short"][2]
    messages = build_messages(
        "Who printed books?", [_hit("a", "Gutenberg printed books.")], examples=examples
    )
    roles = [m["role"] for m in messages]
    assert roles == ["system"] + ["user", "assistant"] * len(examples) + ["user"]
    assert [m["content"] for m in messages[2:-1:2]] == [e.answer for e in examples]
    first, real = messages[1]["content"], messages[-1]["content"]
    for text, question in ((first, examples[0].question), (real, "Who printed books?")):
        assert text.startswith(f"Question: {question}\n\nPassages:\nPassage [1] (from ")
        assert text.endswith("\n\n" + INSTRUCTION.replace("{question}", question))


def test_long_passages_are_cut() -> None:
    (_, user) = build_messages("q", [_hit("a", "word " * 1000)], max_passage_chars=100)
    line = user["content"].splitlines()[3]
    assert len(line) < 130 and line.endswith("…")


def test_time_spans_and_custom_instruction() -> None:
    hit = _hit(
        "a#0", "Thunder rumbles.", source="/x/storm.wav", span=Span(t_start=12.4, t_end=17.0)
    )
    (_, user) = build_messages("What sound?", [hit], instruction="Reply to: {question} {x}")
    assert "Passage [1] (from storm.wav, 12-17 s): Thunder rumbles." in user["content"]
    assert user["content"].endswith("Reply to: What sound? {x}")


def test_no_passages_still_asks() -> None:
    (_, user) = build_messages("q", [])
    assert "(none)" in user["content"]


@pytest.fixture()
def photo(data_dir: Path, tmp_path: Path) -> Path:
    src = sorted((data_dir / "flickr8k" / "images").glob("*.jpg"))[0]
    store = tmp_path / "store"
    (store / "media").mkdir(parents=True)
    dest = store / "media" / src.name
    dest.write_bytes(src.read_bytes())
    return dest


def test_image_passages_become_image_parts_for_multimodal_models(photo: Path) -> None:
    store = photo.parents[1]
    hits = [
        _hit("t", "A dog runs on the beach."),
        _hit("i", "a photo", modality=Modality.IMAGE, media=f"media/{photo.name}"),
    ]
    (_, user) = build_messages(
        "What is in the photo?", hits, images=True, media=media_resolver(store)
    )
    parts = user["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    assert parts[0]["text"].startswith("Question: What is in the photo?")
    assert "Passage [1] (from t): A dog runs on the beach." in parts[0]["text"]
    assert parts[0]["text"].rstrip().endswith("Passage [2] (from i): image: a photo")
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == photo.read_bytes()
    assert parts[2]["text"].endswith(INSTRUCTION.replace("{question}", "What is in the photo?"))


def test_images_stay_text_for_text_models_and_outside_the_store(photo: Path) -> None:
    store = photo.parents[1]
    inside = _hit("i", "a photo", modality=Modality.IMAGE, media=f"media/{photo.name}")
    elsewhere = photo.parents[1].parent / "elsewhere.jpg"  # a real JPEG, outside the store
    elsewhere.write_bytes(photo.read_bytes())
    outside = _hit("o", "elsewhere", modality=Modality.IMAGE, media=str(elsewhere))
    (_, user) = build_messages("q", [inside], images=False, media=media_resolver(store))
    assert isinstance(user["content"], str)
    (_, user) = build_messages("q", [outside], images=True, media=media_resolver(store))
    assert isinstance(user["content"], str) and "elsewhere" in user["content"]


def test_image_part_refuses_non_images(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert image_part(text) is None


def test_why_and_how_questions_ask_for_the_reason() -> None:
    from mmrag.generate.prompts import EXPLAIN, asks_for_explanation

    for q in ("Why does bread rise?", "How do bees tell where flowers are?", "为什么天是蓝的？"):
        assert asks_for_explanation(q), q
    for q in (
        "How many moons has Mars?",
        "How long is the Nile?",
        "Who printed books?",
        "长江有多少公里？",
    ):
        assert not asks_for_explanation(q), q
    style = STYLES["short"]
    (*_, why) = build_messages(
        "Why did it rise?",
        [_hit("a", "Yeast made gas.")],
        instruction=style.instruction,
        explain=style.explain,
    )
    assert why["content"].endswith(EXPLAIN.replace("{question}", "Why did it rise?"))
    # the worked why-question is shown with the same instruction the real one gets
    messages = build_messages("Who?", [], examples=style.examples, explain=style.explain)
    shown = [m["content"] for m in messages if m["role"] == "user"][:-1]
    explained = [
        text.endswith(EXPLAIN.replace("{question}", e.question))
        for text, e in zip(shown, style.examples, strict=True)
    ]
    assert explained.count(True) == 1


def test_questions_asking_several_things_ask_for_every_part() -> None:
    from mmrag.generate.prompts import SEVERAL, asks_several

    for q in (
        "Who invented the printing press and when?",
        "When and where was Chopin born?",
        "What did Tesla build, and why did it fail?",
        "谁发明了印刷机，在什么时候？",
    ):
        assert asks_several(q), q
    for q in (
        "Who was king when the war began?",
        "What did Gutenberg and Fust print?",
        "Which is older, Oxford or Cambridge?",
        "谷雨是第几个节气？",
        "什么时候发明了印刷机？",
    ):
        assert not asks_several(q), q
    style = STYLES["short"]
    messages = build_messages(
        "Who invented it and when?",
        [_hit("a", "Gutenberg, around 1440.")],
        instruction=style.instruction,
        explain=style.explain,
        several=style.several,
    )
    assert messages[-1]["content"].endswith(
        SEVERAL.replace("{question}", "Who invented it and when?")
    )
