"""Split a document into sentences with character offsets into the original text.

Segmentation is sentencex's (rule-based, abbreviation-aware: "Lt. Gen.", "U.S.", "Feb. 26" do
not end a sentence). Its segments concatenate back to the input exactly, which gives offsets.

sentencex 0.x panics (a Rust panic, which Python raises as a BaseException) when white space
wider than one byte in UTF-8, such as a no-break space, sits between a capital and a period
("A\u00a0."). It therefore sees a copy of the document with every such space replaced by an
ASCII one, one character for one, so that offsets still point into the original.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentencex import segment


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int


# Every white-space character outside ASCII (str.isspace), and its ASCII stand-in: line and
# paragraph separators become a newline, the others a space.
_WIDE_SPACES = {
    code: ("\n" if code in (0x85, 0x2028, 0x2029) else " ")
    for code in (0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
}


def split_sentences(document: str) -> list[Span]:
    """Sentences of `document` without surrounding whitespace; `document[start:end] == text`."""
    narrow = document.translate(_WIDE_SPACES)  # same length, same offsets
    spans: list[Span] = []
    offset = 0
    for piece in segment("en", narrow):
        found = narrow.find(piece, offset)
        # sentencex returns exact slices; the search only guards against a future change.
        start = found if found >= 0 else offset
        stripped = piece.strip()
        if stripped:
            begin = start + len(piece) - len(piece.lstrip())
            end = begin + len(stripped)
            spans.append(Span(document[begin:end], begin, end))
        offset = start + len(piece)
    return spans
