"""TF-IDF features for serving, computed without scikit-learn's per-call machinery.

`FastTfidf` reproduces a fitted `FeatureUnion` of `TfidfVectorizer`s (word and `char_wb`
analyzers, sublinear tf, idf, l2 norm) for a batch of texts and returns the non-zero entries as
flat arrays. It is exact: the same n-grams, counts and weights (tests hold the two equal).
What it saves: input validation and sparse-matrix construction on every call, and most of the
cost of character n-grams, which scikit-learn builds one word at a time in a Python loop.

Character n-grams are found with array arithmetic instead: every character the vocabulary uses
gets a small code (0 for any other character), the words to work out, each padded with a
space, are laid end to end with a code-0 character between them, and each window of n codes
packs into one integer that is looked up among the packed vocabulary n-grams. No window that
crosses two words can match: vocabulary n-grams never hold an unknown character.

The work is done once per distinct word, as it appears in the texts, and each model remembers
what it worked out for the words of earlier batches (`_Memory`): news repeats its words, so a
batch mostly recalls them, preprocessing (lowercase, accents) included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, compress, islice, repeat
from operator import is_
from typing import Any, cast

import numpy as np
import numpy.typing as npt

# The word tokens of sitrep's models: words of two or more characters may hold apostrophes and
# hyphens inside ("al-Bashir", "don't"); single characters count too.
WORD_TOKEN_PATTERN = r"(?u)\b\w[\w'’-]*\w\b|\b\w\b"
_INNER = "'’-"
# Characters outside every word token's ends: no word character among them, and apostrophes and
# hyphens only join two parts of one.
_PUNCTUATION = _INNER + '"‘“”«».,;:!?()[]{}…—–/'
_RUNS = re.compile(rf"[\w{_INNER}]+")
_SCIKIT_LEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
IntArray = npt.NDArray[np.int64]
Items = npt.NDArray[np.int32]  # words' remembered items: codes, n-gram features
# Words, as written, whose items a model keeps between batches (`_Memory`). Measured over the
# benchmark's 15 bodies as written and then in capitals (the memory filled and started over
# once): 16 MB more at peak than after loading, 191 MB in all.
SEEN_WORDS = 30_000
# (text index, feature index) of each n-gram found
Occurrences = tuple[IntArray, IntArray | Items]


@dataclass(frozen=True)
class SparseRows:
    """Non-zero features of a batch: parallel arrays of row, column and value.

    The arrays are the parts of the union laid end to end (`part_ends`), rows ascending
    within each part, so each part is a compressed sparse row matrix without sorting."""

    rows: IntArray
    columns: IntArray
    values: npt.NDArray[np.float64]
    part_ends: tuple[int, ...]


@dataclass(frozen=True)
class _Block:
    """One vectorizer of the union: how to find its n-grams, and their weights."""

    preprocessing: tuple[bool, Any]  # (lowercase, strip_accents): blocks alike share the work
    grams: _WordGrams | _CharGrams
    width: int
    idf: npt.NDArray[np.float64]
    sublinear: bool
    offset: int


class FastTfidf:
    """Exact, batch-oriented replacement for `FeatureUnion.transform` of TF-IDF vectorizers.

    What a word contributes to each vectorizer depends on the word alone: scikit-learn
    lowercases and strips accents character by character, and neither analyzer looks across
    white space. So each distinct word, as written, is worked out once for all vectorizers
    (`_work_out`) and remembered as one entry: the 32-bit integers of every vectorizer's items
    laid end to end, after a header with the number of items of each vectorizer but the last.
    """

    def __init__(
        self,
        blocks: list[_Block],
        preprocessors: dict[tuple[bool, Any], Callable[[str], str]],
        known: list[str],
    ) -> None:
        self._blocks = blocks
        self._preprocessors = preprocessors
        self.width = sum(block.width for block in blocks)  # columns, in the union's order
        # The words of the model's vocabulary, as they are written in running text, are worked
        # out once, now, and kept for good.
        written = list(dict.fromkeys(chain(known, map(str.capitalize, known))))
        self._met = _Memory(dict(zip(written, self._work_out(written), strict=True)))

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
        preprocessors = {}
        offset = 0
        for _, vectorizer in named:
            grams = _grams(vectorizer)
            if grams is None:
                return None
            width = len(vectorizer.vocabulary_)
            blocks.append(
                _Block(
                    preprocessing=(vectorizer.lowercase, vectorizer.strip_accents),
                    grams=grams,
                    width=width,
                    idf=np.asarray(vectorizer.idf_, dtype=np.float64),
                    sublinear=bool(vectorizer.sublinear_tf),
                    offset=offset,
                )
            )
            preprocessors[blocks[-1].preprocessing] = _preprocessor(vectorizer)
            offset += width
        known = [
            token
            for _, vectorizer in named
            if vectorizer.analyzer == "word"
            for token in vectorizer.vocabulary_
            if " " not in token
        ]
        return cls(blocks, preprocessors, known)

    def transform(self, texts: list[str]) -> SparseRows:
        words = _Words.split(texts)
        entries = self._met.complete(words.all, self._work_out)
        sizes = np.fromiter(map(len, entries), dtype=np.int64, count=len(entries)) // 4
        items = np.frombuffer(b"".join(entries), dtype=np.int32)
        # Unpack each word's entry: where each vectorizer's items start, and how many.
        header = len(self._blocks) - 1
        entry_starts = np.cumsum(sizes) - sizes
        starts, rest = entry_starts + header, sizes - header
        parts = []
        for number, block in enumerate(self._blocks):
            lengths = items[entry_starts + number] if number < header else rest
            # Passed on, not kept: `_weights` frees the occurrences as soon as it can.
            parts.append(
                _weights(block, words.size, block.grams.find(words, starts, lengths, items))
            )
            starts, rest = starts + lengths, rest - lengths
        return SparseRows(
            np.concatenate([rows for rows, _, _ in parts]),
            np.concatenate(
                [
                    columns + block.offset
                    for (_, columns, _), block in zip(parts, self._blocks, strict=True)
                ]
            ),
            np.concatenate([values for _, _, values in parts]),
            tuple(np.cumsum([len(rows) for rows, _, _ in parts]).tolist()),
        )

    def _work_out(self, words: list[str]) -> list[bytes]:
        """Each word's entry: its preprocessed parts' items for every vectorizer."""
        parts = {
            key: [step(word).split() for word in words] for key, step in self._preprocessors.items()
        }
        found = [block.grams.items(parts[block.preprocessing]) for block in self._blocks]
        header = len(found) - 1
        sizes = header + np.sum([lengths for lengths, _ in found], axis=0)
        packed = np.empty(int(sizes.sum()), dtype=np.int32)
        starts = np.cumsum(sizes) - sizes
        for number, (lengths, _) in enumerate(found[:-1]):
            packed[starts + number] = lengths
        begin = starts + header
        for lengths, flat in found:
            packed[_spans(begin, lengths)] = flat
            begin = begin + lengths
        blob = packed.tobytes()
        ends = (4 * (starts + sizes)).tolist()
        return [blob[start:end] for start, end in zip((4 * starts).tolist(), ends, strict=True)]


def _preprocessor(vectorizer: Any) -> Callable[[str], str]:
    """The vectorizer's own preprocessing (lowercase, strip accents), with a short cut for ASCII
    words, most of a feed's: they have no accents, so only lowercasing can change them."""
    preprocess = vectorizer.build_preprocessor()
    if vectorizer.strip_accents not in (None, "ascii", "unicode"):
        return cast(Callable[[str], str], preprocess)
    lowercase = bool(vectorizer.lowercase)

    def fast(word: str) -> str:
        if word.isascii():
            return word.lower() if lowercase else word
        return cast(str, preprocess(word))

    return fast


def _grams(vectorizer: Any) -> _WordGrams | _CharGrams | None:
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
    low, high = vectorizer.ngram_range
    if (
        vectorizer.analyzer == "word"
        and vectorizer.tokenizer is None
        # Patterns known never to match white space, so words can be tokenized one by one.
        and vectorizer.token_pattern in (WORD_TOKEN_PATTERN, _SCIKIT_LEARN_TOKEN_PATTERN)
        and _WordGrams.fits(vectorizer.vocabulary_, low, high)
    ):
        return _WordGrams(
            vectorizer.token_pattern == WORD_TOKEN_PATTERN,
            vectorizer.build_tokenizer(),
            vectorizer.vocabulary_,
            low,
            high,
        )
    # Padded words are at least 3 characters long; a larger minimum would need scikit-learn's
    # special case for short words, which the windows below do not copy.
    if vectorizer.analyzer == "char_wb" and low <= 3 and _CharGrams.fits(vectorizer.vocabulary_):
        return _CharGrams(vectorizer.vocabulary_, low, high)
    return None


@dataclass(frozen=True)
class _Words:
    """A batch of texts as white-space-separated words, in text order.

    scikit-learn collapses runs of white space first, which makes no difference to `split()`.
    """

    all: list[str]
    texts: IntArray  # for every word: the index of its text
    size: int  # how many texts

    @classmethod
    def split(cls, texts: list[str]) -> _Words:
        words: list[str] = []
        lengths = []
        for text in texts:
            split = text.split()
            words += split
            lengths.append(len(split))
        return cls(words, np.repeat(np.arange(len(texts)), lengths), len(texts))

    def gather(self, starts: IntArray, lengths: IntArray, items: Items) -> tuple[IntArray, Items]:
        """Each word's items (`items[starts[i]:starts[i] + lengths[i]]` for word i), with the
        index of the word's text: (text index, item), in text order."""
        return np.repeat(self.texts, lengths), items[_spans(starts, lengths)]


class _Memory:
    """What a model worked out for words in earlier batches, kept for the batches to come: each
    word's entry (see `FastTfidf`).

    News repeats its names, places and punctuation, and a word's n-grams are a pure function of
    the word, so recalling them changes no answer. Besides its `lasting` words (worked out when
    the model loads), the memory keeps at most `SEEN_WORDS` words; when full, it starts over
    rather than track which words are still in use. Batches run on several threads at once:
    lookups read whichever dictionary is current, and changes are made under a lock."""

    def __init__(self, lasting: dict[str, bytes] | None = None) -> None:
        self._lasting = lasting or {}
        self._items = dict(self._lasting)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many words met in batches are kept."""
        return len(self._items) - len(self._lasting)

    def complete(
        self, words: list[str], work_out: Callable[[list[str]], list[bytes]]
    ) -> list[bytes]:
        """Every word's entry, working out (and keeping) only those of words not met before:
        each distinct one once."""
        remembered = list(map(self._items.get, words))
        if None not in remembered:
            return cast(list[bytes], remembered)
        missing = list(dict.fromkeys(compress(words, map(is_, remembered, repeat(None)))))
        worked_out = dict(zip(missing, work_out(missing), strict=True))
        self._keep(worked_out)
        # A word worked out now was not remembered; any other word's entry is its remembered one.
        return list(map(worked_out.get, words, remembered))  # type: ignore[arg-type]

    def _keep(self, items: dict[str, bytes]) -> None:
        with self._lock:
            if len(self) + len(items) > SEEN_WORDS:
                self._items = dict(self._lasting)
            self._items.update(islice(items.items(), SEEN_WORDS))


class _PackedGrams:
    """Finds n-grams of symbols by packing each window of n symbol codes into one integer.

    Codes start at 1; code 0 stands for any symbol outside the vocabulary and separates units
    (words, texts) that no n-gram may cross, so a window holding a 0 never matches. The n-gram's
    length is packed too, so lengths never collide.
    """

    LENGTH_BITS = 3

    def __init__(self, grams: list[list[int]], features: IntArray, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.bits = self.bits_for(max((max(gram) for gram in grams), default=0))
        keys = np.array([self._pack(gram) for gram in grams], dtype=np.int64)
        self.table = _HashTable(keys, features)

    @classmethod
    def bits_for(cls, largest_code: int) -> int:
        return (largest_code + 1).bit_length()

    @classmethod
    def fits(cls, largest_code: int, longest: int) -> bool:
        """Whether every n-gram packs into a 63-bit integer."""
        return cls.bits_for(largest_code) * longest + cls.LENGTH_BITS <= 63

    def _pack(self, codes: list[int]) -> int:
        key = 0
        for code in codes:
            key = (key << self.bits) | code
        return (key << self.LENGTH_BITS) | len(codes)

    def find(self, codes: IntArray | Items) -> tuple[IntArray, IntArray]:
        """(start position, feature index) of every vocabulary n-gram in `codes`.

        The windows of n codes are those of n - 1 codes, each extended by the code that follows
        it, so each length costs one step; all lengths are then looked up at once."""
        key = np.zeros(len(codes), dtype=np.int64)  # each position's window, packed
        known = np.ones(len(codes), dtype=bool)  # whether the window holds only known symbols
        positions_kept, keys_kept = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        for n in range(1, self.high + 1):
            following = codes[n - 1 :]
            key = (key[: len(following)] << self.bits) | following
            known = known[: len(following)] & (following != 0)
            if n >= self.low:
                positions = np.flatnonzero(known)
                positions_kept.append(positions)
                keys_kept.append((key[positions] << self.LENGTH_BITS) | n)
        features = self.table.get(np.concatenate(keys_kept))
        hit = features >= 0
        return np.concatenate(positions_kept)[hit], features[hit]


def _word_tokens(text: str) -> list[str]:
    """`re.findall(WORD_TOKEN_PATTERN, text)`, three times faster.

    The pattern's tokens never cross a run of word characters, apostrophes and hyphens, and each
    run holds exactly one: from its first word character (where the run starts or follows an
    apostrophe or hyphen, so at a word boundary) to its last (greedy, then back to a word
    character, followed by a boundary). That is the run with apostrophes and hyphens stripped
    from both ends; a run of those alone holds none. Tests hold the two equal on any text.

    Most words a model has not met are a plain word in punctuation ("Kharkiv,", "(AP)"), or
    punctuation alone: stripped of it, such a text is its one token, or holds none.
    """
    core = text.strip(_PUNCTUATION)
    if core.isalnum():
        return [core]
    if not core:
        return []
    return list(filter(None, map(str.strip, _RUNS.findall(text), repeat(_INNER))))


def _owners(positions: IntArray, lengths: IntArray) -> IntArray:
    """Which unit each position falls in, for units laid end to end with one separator each."""
    return np.repeat(np.arange(len(lengths)), lengths + 1)[positions]


class _WordGrams:
    """Word n-grams: each token gets a code, and windows of codes are looked up packed.

    The tokens are scikit-learn's own (its preprocessor and token pattern); counting the
    n-grams, which scikit-learn does by joining strings, is array arithmetic here."""

    def __init__(
        self,
        sitrep_pattern: bool,
        tokenize: Callable[[str], list[str]],
        vocabulary: dict[str, int],
        low: int,
        high: int,
    ) -> None:
        # sitrep's pattern has an equivalent that is three times faster: `_word_tokens`.
        self.tokenize = _word_tokens if sitrep_pattern else tokenize
        grams = [gram.split(" ") for gram in vocabulary]
        tokens = sorted({token for gram in grams for token in gram})
        self.codes = {token: code for code, token in enumerate(tokens, start=1)}
        self.grams = _PackedGrams(
            [[self.codes[token] for token in gram] for gram in grams],
            np.fromiter(vocabulary.values(), dtype=np.int64),
            low,
            high,
        )

    @classmethod
    def fits(cls, vocabulary: dict[str, int], low: int, high: int) -> bool:
        """Whether the vocabulary's n-grams split back into tokens and pack into integers."""
        grams = [gram.split(" ") for gram in vocabulary]
        if any(not low <= len(gram) <= high or "" in gram for gram in grams):
            return False
        tokens = {token for gram in grams for token in gram}
        return _PackedGrams.fits(len(tokens), high)

    def items(self, words: list[list[str]]) -> tuple[IntArray, IntArray]:
        """The token codes of each word's preprocessed parts: (how many, all laid end to end)."""
        coded = self._code_each(list(chain.from_iterable(words)))
        per_part = np.fromiter(map(len, coded), dtype=np.int64, count=len(coded))
        codes = np.fromiter(chain.from_iterable(coded), dtype=np.int64, count=int(per_part.sum()))
        return _per_word(per_part, words), codes

    def find(self, words: _Words, starts: IntArray, lengths: IntArray, codes: Items) -> Occurrences:
        """The n-grams of the batch, given where each word's codes are in `codes`."""
        token_texts, token_codes = words.gather(starts, lengths, codes)
        # A 0 where a text ends, so that no n-gram crosses into the next text.
        ends = np.flatnonzero(token_texts[1:] != token_texts[:-1]) + 1
        positions, features = self.grams.find(np.insert(token_codes, ends, 0))
        return np.insert(token_texts, ends, -1)[positions], features

    def _code_each(self, words: list[str]) -> list[tuple[int, ...]]:
        code, tokenize = self.codes.get, self.tokenize
        return [tuple(map(code, tokenize(word), repeat(0))) for word in words]


class _CharGrams:
    """`char_wb` n-grams: found once per distinct word, then counted per text.

    scikit-learn takes the n-grams of each white-space-separated word padded with one space;
    a text's n-grams are its words' n-grams. Words are searched together, with the characters
    as codes and the padded words laid end to end, separated by code 0.
    """

    def __init__(self, vocabulary: dict[str, int], low: int, high: int) -> None:
        alphabet = sorted({char for gram in vocabulary for char in gram})
        self.code_points = np.array([ord(char) for char in alphabet], dtype=np.uint32)
        codes = {char: code for code, char in enumerate(alphabet, start=1)}
        self.grams = _PackedGrams(
            [[codes[char] for char in gram] for gram in vocabulary],
            np.fromiter(vocabulary.values(), dtype=np.int64),
            low,
            high,
        )

    @classmethod
    def fits(cls, vocabulary: dict[str, int]) -> bool:
        alphabet = {char for gram in vocabulary for char in gram}
        longest = max((len(gram) for gram in vocabulary), default=0)
        return _PackedGrams.fits(len(alphabet), longest)

    def items(self, words: list[list[str]]) -> tuple[IntArray, IntArray]:
        """The n-grams of each word's preprocessed parts: (how many, all laid end to end)."""
        parts = list(chain.from_iterable(words))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return _per_word(empty, words), empty
        padded = [f" {part} " for part in parts]
        positions, features = self.grams.find(self._codes("\0".join(padded)))
        owners = _owners(positions, np.fromiter(map(len, padded), dtype=np.int64))
        per_part = np.bincount(owners, minlength=len(parts))
        return _per_word(per_part, words), features[np.argsort(owners, kind="stable")]

    def find(self, words: _Words, starts: IntArray, lengths: IntArray, grams: Items) -> Occurrences:
        """Every occurrence of a word contributes all of its n-grams to its text."""
        return words.gather(starts, lengths, grams)

    def _codes(self, joined: str) -> IntArray:
        points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        slots = np.minimum(np.searchsorted(self.code_points, points), len(self.code_points) - 1)
        return np.where(self.code_points[slots] == points, slots + 1, 0).astype(np.int64)


class _HashTable:
    """Open-addressing hash table from packed n-grams to feature indices, probed with arrays.

    For a big batch, a lookup touches one or two slots of a small table instead of a binary
    search: the lookup is the hottest loop of serving. But every probe round is a few array
    operations, and the rounds go on until the unluckiest key is settled, so a few keys (one
    sentence) are cheaper to find by binary search in the sorted keys.
    """

    EMPTY = -1
    MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
    FEW_KEYS = 2_000  # below this, binary search: measured faster for one-sentence batches

    def __init__(self, keys: IntArray, values: IntArray) -> None:
        order = np.argsort(keys)
        self.sorted_keys, self.sorted_values = keys[order], values[order]
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
        if len(keys) < self.FEW_KEYS:
            return self._search(keys)
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

    def _search(self, keys: IntArray) -> IntArray:
        if not len(self.sorted_keys):
            return np.full(len(keys), self.EMPTY, dtype=np.int64)
        slots = np.minimum(np.searchsorted(self.sorted_keys, keys), len(self.sorted_keys) - 1)
        return np.where(self.sorted_keys[slots] == keys, self.sorted_values[slots], self.EMPTY)


def _spans(starts: IntArray, lengths: IntArray) -> IntArray:
    """The positions `starts[i]` to `starts[i] + lengths[i]` (exclusive) for each i, in order."""
    firsts = np.cumsum(lengths) - lengths  # where each span begins in the result
    return np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum()))


def _per_word(per_part: IntArray, words: list[list[str]]) -> IntArray:
    """Counts given for each part of each word, summed for each word."""
    owners = np.repeat(np.arange(len(words)), np.fromiter(map(len, words), dtype=np.int64))
    return np.bincount(owners, weights=per_part, minlength=len(words)).astype(np.int64)


def _weights(
    block: _Block, texts: int, found: Occurrences
) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Sublinear tf × idf, l2-normalised per text: TfidfVectorizer's arithmetic."""
    # Count each (text, feature) pair by sorting them as one number; 32-bit numbers sort twice
    # as fast, and they fit while texts × features stays under 2**31.
    kind = np.dtype(np.int32 if texts * block.width < 2**31 else np.int64)
    keys = found[0].astype(kind) * np.array(block.width, dtype=kind) + found[1].astype(kind)
    # The occurrences are a big batch's biggest arrays. Freeing them now keeps the peak of a
    # 1,000-sentence batch within the memory the allocator keeps between batches (allocator.py).
    del found
    keys.sort()
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=len(keys))
    keys = keys[starts].astype(np.int64)
    # The keys are sorted, so each text's are a run: find where each run ends.
    ends = np.searchsorted(keys, np.arange(1, texts + 1, dtype=np.int64) * block.width)
    per_text = np.diff(ends, prepend=0)
    rows = np.repeat(np.arange(texts, dtype=np.int64), per_text)
    columns = keys - rows * block.width
    values = block.idf[columns]
    if block.sublinear:
        repeated = counts > 1  # 1 + log(1) is 1
        values[repeated] *= np.log(counts[repeated]) + 1.0
    else:
        values *= counts
    # A sum over each run (a text without features has none): several times faster than
    # `np.bincount(rows, ...)`.
    filled = per_text > 0
    norms = np.sqrt(np.add.reduceat(values * values, (ends - per_text)[filled]))
    values /= np.repeat(norms, per_text[filled])
    return rows, columns, values
