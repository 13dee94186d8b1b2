"""Sentence splitting: abbreviations do not split, offsets point into the input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.sentences import split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Lt. Gen. Syrskyi visited the front. Two soldiers were wounded.",
            ["Lt. Gen. Syrskyi visited the front.", "Two soldiers were wounded."],
        ),
        (
            "The U.S. sent aid on Feb. 26 to the region. It arrived late.",
            ["The U.S. sent aid on Feb. 26 to the region.", "It arrived late."],
        ),
        (
            "Dr. Amal Hussein said the clinic was hit at 3 p.m. on Monday. Four died.",
            ["Dr. Amal Hussein said the clinic was hit at 3 p.m. on Monday.", "Four died."],
        ),
        (
            "Prices rose 3.5 percent! Is the war over? No.",
            ["Prices rose 3.5 percent!", "Is the war over?", "No."],
        ),
        (
            "Shelling resumed\n\nResidents fled to the south.",
            ["Shelling resumed", "Residents fled to the south."],
        ),
        ("no punctuation at all", ["no punctuation at all"]),
    ],
)
def test_splits_where_a_reader_would(text: str, expected: list[str]) -> None:
    assert [span.text for span in split_sentences(text)] == expected


def test_whitespace_only_document_has_no_sentences() -> None:
    assert split_sentences(" \n\t ") == []


@given(st.text(min_size=1, max_size=400))
def test_offsets_always_slice_the_input_to_the_sentence(text: str) -> None:
    previous_end = 0
    for span in split_sentences(text):
        assert text[span.start : span.end] == span.text
        assert span.text == span.text.strip()
        assert span.text
        assert span.start >= previous_end
        previous_end = span.end


WIDE_SPACES = [chr(code) for code in range(128, 0x110000) if chr(code).isspace()]


@pytest.mark.parametrize("space", WIDE_SPACES, ids=[f"U+{ord(c):04X}" for c in WIDE_SPACES])
def test_wide_white_space_before_a_period_does_not_crash_the_splitter(space: str) -> None:
    """sentencex panics on "A<no-break space>." (found by the document property test)."""
    text = f"Plan B{space}. The convoy left at dawn."
    spans = split_sentences(text)
    assert [text[span.start : span.end] for span in spans] == [span.text for span in spans]
    assert spans[-1].text == "The convoy left at dawn."


@given(st.text(alphabet=st.sampled_from(["A", "b", ".", " ", "\n", *WIDE_SPACES]), max_size=40))
def test_any_mix_of_capitals_periods_and_spaces_splits(text: str) -> None:
    for span in split_sentences(text):
        assert text[span.start : span.end] == span.text
