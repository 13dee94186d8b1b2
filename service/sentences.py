"""Split a document into sentences with character offsets into the original text.

Segmentation is sentencex's (rule-based, abbreviation-aware: "Lt. Gen.", "U.S.", "Feb. 26" do
not end a sentence). Its segments concatenate back to the input exactly, which gives offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentencex import segment


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int


def split_sentences(document: str) -> list[Span]:
    """Sentences of `document` without surrounding whitespace; `document[start:end] == text`."""
    spans: list[Span] = []
    offset = 0
    for piece in segment("en", document):
        found = document.find(piece, offset)
        # sentencex returns exact slices; the search only guards against a future change.
        start = found if found >= 0 else offset
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append(Span(stripped, start + lead, start + lead + len(stripped)))
        offset = start + len(piece)
    return spans
