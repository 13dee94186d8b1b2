"""TF-IDF features for serving, computed without scikit-learn's per-call machinery.

`FastTfidf` reproduces a fitted `FeatureUnion` of `TfidfVectorizer`s (word and `char_wb`
analyzers, sublinear tf, idf, l2 norm) for a batch of texts and returns the non-zero entries as
flat arrays. It is exact: the same n-grams, counts and weights (tests hold the two equal).
What it saves: input validation and sparse-matrix construction on every call, and most of the
cost of character n-grams, which scikit-learn builds one word at a time in a Python loop.

Character n-grams are found with array arithmetic instead: every character the vocabulary uses
gets a small code (0 for any other character), the padded words of the whole batch are laid end
to end, and each window of n codes packs into one integer that is looked up among the packed
vocabulary n-grams. Words are separated by two spaces and texts by a code-0 character, so no
window that crosses a word or a text can match (vocabulary n-grams never hold two spaces in a
row, nor an unknown character).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# scikit-learn's own pattern for runs of white space in char_wb analysis.
_WHITE_SPACES = re.compile(r"\s\s+")
IntArray = npt.NDArray[np.int64]
Occurrences = tuple[IntArray, IntArray]  # (text index, feature index) of each n-gram found


@dataclass(frozen=True)
class SparseRows:
    """Non-zero features of a batch: parallel arrays of row, column and value."""

    rows: IntArray
    columns: IntArray
    values: npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Block:
    """One vectorizer of the union: how to find its n-grams, and its weights."""

    find: Callable[[list[str]], Occurrences]
    width: int
    idf: npt.NDArray[np.float64]
    sublinear: bool
    offset: int


class FastTfidf:
    """Exact, batch-oriented replacement for `FeatureUnion.transform` of TF-IDF vectorizers."""

    def __init__(self, blocks: list[_Block]) -> None:
        self._blocks = blocks
        self.width = sum(block.width for block in blocks)  # columns, in the union's order

    @classmethod
    def from_union(cls, union: Any) -> FastTfidf | None:
        """Mirror a fitted FeatureUnion; None when it holds anything this class cannot copy."""
        return cls.from_vectorizers(union.transformer_list, union.transformer_weights)

    @classmethod
    def from_vectorizers(
        cls, named: list[tuple[str, Any]], weights: dict[str, float] | None = None
    ) -> FastTfidf | None:
        """Mirror fitted vectorizers, given as a FeatureUnion's (name, vectorizer) list."""
        if any(weight != 1 for name, weight in (weights or {}).items() if name in dict(named)):
            return None
        blocks = []
        offset = 0
        for _, vectorizer in named:
            find = _finder(vectorizer)
            if find is None:
                return None
            width = len(vectorizer.vocabulary_)
            blocks.append(
                _Block(
                    find=find,
                    width=width,
                    idf=np.asarray(vectorizer.idf_, dtype=np.float64),
                    sublinear=bool(vectorizer.sublinear_tf),
                    offset=offset,
                )
            )
            offset += width
        return cls(blocks)

    def transform(self, texts: list[str]) -> SparseRows:
        parts = [_weights(block, texts) for block in self._blocks]
        return SparseRows(
            np.concatenate([rows for rows, _, _ in parts]),
            np.concatenate(
                [
                    columns + block.offset
                    for (_, columns, _), block in zip(parts, self._blocks, strict=True)
                ]
            ),
            np.concatenate([values for _, _, values in parts]),
        )


def _finder(vectorizer: Any) -> Callable[[list[str]], Occurrences] | None:
    supported = (
        type(vectorizer).__name__ == "TfidfVectorizer"
        and vectorizer.input == "content"
        and vectorizer.preprocessor is None
        and vectorizer.stop_words is None
        and vectorizer.norm == "l2"
        and vectorizer.use_idf
        and not vectorizer.binary
    )
    if not supported:
        return None
    if vectorizer.analyzer == "word" and vectorizer.tokenizer is None:
        return _WordGrams(vectorizer.build_analyzer(), vectorizer.vocabulary_).find
    low, high = vectorizer.ngram_range
    # Padded words are at least 3 characters long; a larger minimum would need scikit-learn's
    # special case for short words, which the windows below do not copy.
    if vectorizer.analyzer == "char_wb" and low <= 3 and _CharGrams.fits(vectorizer.vocabulary_):
        return _CharGrams(vectorizer.build_preprocessor(), vectorizer.vocabulary_, low, high).find
    return None


class _WordGrams:
    """Word n-grams through scikit-learn's own analyzer (tokenizing is cheap; counting is not)."""

    def __init__(self, analyze: Callable[[str], list[str]], vocabulary: dict[str, int]) -> None:
        self.analyze = analyze
        self.lookup = vocabulary.get

    def find(self, texts: list[str]) -> Occurrences:
        text_ids: list[int] = []
        feature_ids: list[int] = []
        for row, text in enumerate(texts):
            found = [index for index in map(self.lookup, self.analyze(text)) if index is not None]
            feature_ids += found
            text_ids += [row] * len(found)
        return np.asarray(text_ids, dtype=np.int64), np.asarray(feature_ids, dtype=np.int64)


class _CharGrams:
    """`char_wb` n-grams found by packing windows of character codes into integers."""

    LENGTH_BITS = 3  # the n-gram length is packed too, so lengths never collide

    def __init__(
        self,
        preprocess: Callable[[str], str],
        vocabulary: dict[str, int],
        low: int,
        high: int,
    ) -> None:
        self.preprocess = preprocess
        self.low, self.high = low, high
        alphabet = sorted({char for gram in vocabulary for char in gram})
        self.bits = self._bits(len(alphabet))
        self.code_points = np.array([ord(char) for char in alphabet], dtype=np.uint32)
        codes = {char: code for code, char in enumerate(alphabet, start=1)}
        keys = np.array(
            [self._pack([codes[char] for char in gram]) for gram in vocabulary], dtype=np.int64
        )
        self.table = _HashTable(keys, np.fromiter(vocabulary.values(), dtype=np.int64))

    @classmethod
    def fits(cls, vocabulary: dict[str, int]) -> bool:
        """Whether every n-gram packs into a 63-bit integer."""
        alphabet = {char for gram in vocabulary for char in gram}
        longest = max((len(gram) for gram in vocabulary), default=0)
        return cls._bits(len(alphabet)) * longest + cls.LENGTH_BITS <= 63

    @staticmethod
    def _bits(alphabet_size: int) -> int:
        return (alphabet_size + 1).bit_length()

    def _pack(self, codes: list[int]) -> int:
        key = 0
        for code in codes:
            key = (key << self.bits) | code
        return (key << self.LENGTH_BITS) | len(codes)

    def find(self, texts: list[str]) -> Occurrences:
        padded = [
            " " + "  ".join(_WHITE_SPACES.sub(" ", self.preprocess(text)).split()) + " "
            for text in texts
        ]
        codes = self._codes("\0".join(padded))
        starts = np.cumsum([0] + [len(text) + 1 for text in padded[:-1]])
        text_ids, feature_ids = [], []
        for n in range(self.low, self.high + 1):
            count = len(codes) - n + 1
            if count <= 0:
                continue
            key = np.zeros(count, dtype=np.int64)
            known = np.ones(count, dtype=bool)
            for k in range(n):
                window = codes[k : k + count]
                key = (key << self.bits) | window
                known &= window != 0
            positions = np.flatnonzero(known)
            features = self.table.get((key[positions] << self.LENGTH_BITS) | n)
            hit = features >= 0
            text_ids.append(np.searchsorted(starts, positions[hit], side="right") - 1)
            feature_ids.append(features[hit])
        if not text_ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(text_ids).astype(np.int64), np.concatenate(feature_ids)

    def _codes(self, joined: str) -> IntArray:
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        slots = np.minimum(np.searchsorted(self.code_points, points), len(self.code_points) - 1)
        return np.where(self.code_points[slots] == points, slots + 1, 0).astype(np.int64)


class _HashTable:
    """Open-addressing hash table from packed n-grams to feature indices, probed with arrays.

    A sorted array and `searchsorted` would do, but a lookup here touches one or two slots of
    a small table instead of a binary search: the lookup is the hottest loop of serving.
    """

    EMPTY = -1
    MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, keys: IntArray, values: IntArray) -> None:
        self.bits = max(4, (2 * len(keys)).bit_length())  # load factor at most one half
        size = 1 << self.bits
        self.keys = np.full(size, self.EMPTY, dtype=np.int64)
        self.values = np.full(size, self.EMPTY, dtype=np.int64)
        self.longest_probe = 0
        for key, value in zip(keys.tolist(), values.tolist(), strict=True):
            slot = int(self._slots(np.array([key], dtype=np.int64))[0])
            probe = 0
            while self.keys[slot] != self.EMPTY:
                slot = (slot + 1) & (size - 1)
                probe += 1
            self.keys[slot], self.values[slot] = key, value
            self.longest_probe = max(self.longest_probe, probe)

    def _slots(self, keys: IntArray) -> IntArray:
        with np.errstate(over="ignore"):
            hashed = keys.astype(np.uint64) * self.MULTIPLIER
        return (hashed >> np.uint64(64 - self.bits)).astype(np.int64)

    def get(self, keys: IntArray) -> IntArray:
        """The value of each key, or -1 where the key is absent (keys are never negative)."""
        found = np.full(len(keys), self.EMPTY, dtype=np.int64)
        slots = self._slots(keys)
        pending = np.arange(len(keys))
        mask = len(self.keys) - 1
        for _ in range(self.longest_probe + 1):
            stored = self.keys[slots]
            match = stored == keys[pending]
            found[pending[match]] = self.values[slots[match]]
            going_on = ~match & (stored != self.EMPTY)
            pending, slots = pending[going_on], (slots[going_on] + 1) & mask
            if not len(pending):
                break
        return found


def _weights(block: _Block, texts: list[str]) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Sublinear tf × idf, l2-normalised per text: TfidfVectorizer's arithmetic."""
    text_ids, feature_ids = block.find(texts)
    keys, counts = np.unique(text_ids * block.width + feature_ids, return_counts=True)
    rows, columns = np.divmod(keys, block.width)
    values = counts.astype(np.float64)
    if block.sublinear:
        values = np.log(values) + 1.0
    values *= block.idf[columns]
    norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=len(texts)))
    values /= norms[rows]
    return rows, columns, values
