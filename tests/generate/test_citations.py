"""Citation markers: parsing, dropping numbers that name no passage, attribution by overlap."""

from __future__ import annotations

from mmrag.generate.citations import attribute, marker_numbers, resolve

PASSAGES = [
    "A derailleur moves the chain between sprockets by pushing it sideways with a cage.",
    "Sourdough rises because wild yeast and lactic acid bacteria produce carbon dioxide.",
    "The printing press was invented by Johannes Gutenberg around 1440 in Mainz.",
]


def test_marker_numbers_lists_and_ranges() -> None:
    assert marker_numbers("2") == [2]
    assert marker_numbers("1, 3") == [1, 3]
    assert marker_numbers("1-3") == [1, 2, 3]
    assert marker_numbers("2–4; 7") == [2, 3, 4, 7]
    assert marker_numbers("1-9999") == [1, 9999]  # an absurd range is two numbers, not 9999


def test_valid_markers_are_kept_in_order_of_first_mention() -> None:
    r = resolve("Gutenberg built it [3]. Yeast makes gas [2][3].", 3)
    assert r.text == "Gutenberg built it [3]. Yeast makes gas [2][3]."
    assert r.numbers == [3, 2]
    assert r.dropped == []


def test_numbers_outside_the_context_are_dropped_and_reported() -> None:
    r = resolve("Yeast makes gas [2, 7]. The moon is cheese [9]. Also [0].", 3)
    assert r.text == "Yeast makes gas [2]. The moon is cheese. Also."
    assert r.numbers == [2]
    assert r.dropped == [7, 9, 0]


def test_ranges_expand_and_clip_to_the_context() -> None:
    r = resolve("All of them [1-4].", 3)
    assert r.text == "All of them [1][2][3]."
    assert r.numbers == [1, 2, 3]
    assert r.dropped == [4]


def test_no_context_drops_every_marker() -> None:
    r = resolve("Something [1].", 0)
    assert r.text == "Something." and r.numbers == [] and r.dropped == [1]


def test_attribute_cites_the_copied_passage_and_flags_it_inferred() -> None:
    r = attribute(
        resolve("The printing press was invented by Gutenberg in Mainz. I like bread.", 3),
        PASSAGES,
    )
    assert r.text == "The printing press was invented by Gutenberg in Mainz [3]. I like bread."
    assert r.numbers == [3]
    assert r.inferred == {3}


def test_attribute_leaves_cited_and_unrelated_sentences_alone() -> None:
    text = "Sourdough rises because of yeast [1]. Volcanoes erupt when magma pressure builds."
    r = attribute(resolve(text, 3), PASSAGES)
    assert r.text == text
    assert r.numbers == [1]
    assert r.inferred == set()


def test_attribute_is_not_inferred_when_the_model_cited_the_same_passage() -> None:
    text = "Wild yeast and bacteria produce carbon dioxide [2]. Sourdough rises from that gas."
    r = attribute(resolve(text, 3), PASSAGES)
    assert r.numbers == [2]
    assert r.inferred == set()


def test_attribute_handles_chinese_sentences() -> None:
    passages = ["谷雨是二十四节气中的第六个节气。", "立春是二十四节气中的第一个节气。"]
    r = attribute(resolve("谷雨是第六个节气。", 2), passages)
    assert r.text == "谷雨是第六个节气 [1]。"
    assert r.numbers == [1]


def test_restating_the_question_is_not_supported_by_a_passage() -> None:
    question = "What causes ocean tides?"
    passages = ["Ocean tides are caused by the gravity of the Moon and the Sun."]
    restated = 'The answer to the question "What causes ocean tides" is:'
    r = attribute(resolve(restated, 1), passages, question)
    assert r.text == restated and r.numbers == []
    r = attribute(resolve("The gravity of the Moon and the Sun.", 1), passages, question)
    assert r.numbers == [1] and r.inferred == {1}


def test_attribute_does_not_split_sentences_at_abbreviations() -> None:
    passages = [
        "The 1994 earthquake caused the most property damage of any earthquake in U.S. history."
    ]
    r = attribute(resolve("It caused the most property damage in U.S. history.", 1), passages)
    assert r.text == "It caused the most property damage in U.S. history [1]."
