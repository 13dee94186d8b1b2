"""TF-IDF features for serving, computed without scikit-learn's per-call machinery.

`FastTfidf` reproduces a fitted `FeatureUnion` of `TfidfVectorizer`s (word and `char_wb`
analyzers, sublinear tf, idf, l2 norm) for a batch of texts and returns the non-zero entries as
flat arrays. It is exact: the same n-grams, counts and weights (tests hold the two equal).
What it saves: input validation and sparse-matrix construction on every call, and most of the
cost of character n-grams, which scikit-learn builds one word at a time in a Python loop.

Character n-grams are found with array arithmetic instead: every character the vocabulary uses
gets a small code (0 for any other character), the batch's distinct words, each padded with a
space, are laid end to end with a code-0 character between them, and each window of n codes
packs into one integer that is looked up among the packed vocabulary n-grams. No window that
crosses two words can match: vocabulary n-grams never hold an unknown character.

The work is done once per distinct word, and each model remembers what it worked out for the
words of earlier batches (`_Memory`): news repeats its words, so a batch mostly recalls them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, islice, repeat
from typing import Any, Generic, TypeVar, cast

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
T = TypeVar("T")
# Words whose n-grams each vectorizer of a model keeps between batches (`_Memory`). Measured with
# both vectorizers' memories nearly full (35,000 and 45,000 words): 13 MB more at peak.
SEEN_WORDS = 30_000
Occurrences = tuple[IntArray, IntArray]  # (text index, feature index) of each n-gram found


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
    """One vectorizer of the union: how to find its n-grams (in preprocessed texts), and their
    weights."""

    preprocessing: tuple[bool, Any]  # (lowercase, strip_accents): blocks alike share the work
    find: Callable[[_Words], Occurrences]
    width: int
    idf: npt.NDArray[np.float64]
    sublinear: bool
    offset: int


class FastTfidf:
    """Exact, batch-oriented replacement for `FeatureUnion.transform` of TF-IDF vectorizers."""

    def __init__(self, blocks: list[_Block], preprocessors: dict[tuple[bool, Any], Any]) -> None:
        self._blocks = blocks
        self._preprocessors = preprocessors
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
        preprocessors = {}
        offset = 0
        for _, vectorizer in named:
            find = _finder(vectorizer)
            if find is None:
                return None
            width = len(vectorizer.vocabulary_)
            blocks.append(
                _Block(
                    preprocessing=(vectorizer.lowercase, vectorizer.strip_accents),
                    find=find,
                    width=width,
                    idf=np.asarray(vectorizer.idf_, dtype=np.float64),
                    sublinear=bool(vectorizer.sublinear_tf),
                    offset=offset,
                )
            )
            preprocessors[blocks[-1].preprocessing] = vectorizer.build_preprocessor()
            offset += width
        # Words the model knows get their character n-grams looked up once, now.
        known = [token for _, v in named if v.analyzer == "word" for token in v.vocabulary_]
        for block in blocks:
            if isinstance(finder := getattr(block.find, "__self__", None), _CharGrams):
                finder.remember([word for word in known if " " not in word])
        return cls(blocks, preprocessors)

    def transform(self, texts: list[str]) -> SparseRows:
        words = {
            key: _Words.split(list(map(step, texts))) for key, step in self._preprocessors.items()
        }
        parts = [_weights(block, words[block.preprocessing]) for block in self._blocks]
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


def _finder(vectorizer: Any) -> Callable[[_Words], Occurrences] | None:
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
        ).find
    # Padded words are at least 3 characters long; a larger minimum would need scikit-learn's
    # special case for short words, which the windows below do not copy.
    if vectorizer.analyzer == "char_wb" and low <= 3 and _CharGrams.fits(vectorizer.vocabulary_):
        return _CharGrams(vectorizer.vocabulary_, low, high).find
    return None


@dataclass(frozen=True)
class _Words:
    """A batch of preprocessed texts as white-space-separated words, each distinct word once.

    Neither analyzer looks across white space: `char_wb` takes the n-grams of each word, and
    word tokens never hold white space. So the work is done once per distinct word (a batch of
    1,000 sentences has about a quarter as many distinct words as words) and then repeated for
    every occurrence. scikit-learn collapses runs of white space first, which makes no
    difference to `split()`.
    """

    distinct: list[str]
    ids: IntArray  # for every word of every text, in order: its index in `distinct`
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
        distinct = list(dict.fromkeys(words))
        index = dict(zip(distinct, range(len(distinct)), strict=True))
        return cls(
            distinct,
            np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words)),
            np.repeat(np.arange(len(texts)), lengths),
            len(texts),
        )

    def repeat(self, starts: IntArray, lengths: IntArray, items: IntArray) -> Occurrences:
        """Items listed per distinct word (`items[starts[i]:starts[i] + lengths[i]]` for word i),
        repeated for every occurrence of the word: (text index, item), in text order."""
        counts = lengths[self.ids]
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(self.texts, counts), items[np.repeat(starts[self.ids], counts) + within]


class _Memory(Generic[T]):
    """What a model worked out for words in earlier batches, kept for the batches to come.

    News repeats its names, places and punctuation, and a word's n-grams are a pure function of
    the word, so recalling them changes no answer. Besides its `lasting` words (worked out when
    the model loads), the memory keeps at most `SEEN_WORDS` words; when full, it starts over
    rather than track which words are still in use. Batches run on several threads at once:
    lookups read whichever dictionary is current, and changes are made under a lock."""

    def __init__(self, lasting: dict[str, T] | None = None) -> None:
        self._lasting = lasting or {}
        self._items = dict(self._lasting)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many words met in batches are kept."""
        return len(self._items) - len(self._lasting)

    def complete(self, words: list[str], work_out: Callable[[list[str]], list[T]]) -> list[T]:
        """Every word's item, working out (and keeping) only those of words not met before."""
        remembered = list(map(self._items.get, words))
        missing = [word for word, item in zip(words, remembered, strict=True) if item is None]
        if not missing:
            return cast(list[T], remembered)
        worked_out = work_out(missing)
        self._keep(dict(zip(missing, worked_out, strict=True)))
        fill = iter(worked_out)
        return [next(fill) if item is None else item for item in remembered]

    def _keep(self, items: dict[str, T]) -> None:
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

    def find(self, codes: IntArray) -> Occurrences:
        """(start position, feature index) of every vocabulary n-gram in `codes`."""
        positions_found, features_found = [], []
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
            positions_found.append(positions[hit])
            features_found.append(features[hit])
        if not positions_found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(positions_found), np.concatenate(features_found)


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


def _owners(positions: IntArray, lengths: list[int]) -> IntArray:
    """Which unit each position falls in, for units laid end to end with one separator each."""
    starts = np.cumsum([0] + [length + 1 for length in lengths[:-1]])
    return np.asarray(np.searchsorted(starts, positions, side="right") - 1, dtype=np.int64)


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
        # With sitrep's pattern a word of letters and digits only is one token, itself; other
        # words go through the equivalent `_word_tokens`.
        self.sitrep_pattern = sitrep_pattern
        self.tokenize = _word_tokens if sitrep_pattern else tokenize
        grams = [gram.split(" ") for gram in vocabulary]
        tokens = sorted({token for gram in grams for token in gram})
        self.codes = {token: code for code, token in enumerate(tokens, start=1)}
        # Words' token codes; with sitrep's pattern, the vocabulary's plain words are known now.
        self.met: _Memory[tuple[int, ...]] = _Memory(
            {token: (code,) for token, code in self.codes.items() if token.isalnum()}
            if sitrep_pattern
            else None
        )
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

    def find(self, words: _Words) -> Occurrences:
        # The token codes of each distinct word, then of every word in text order.
        coded = self.met.complete(words.distinct, self._code_each)
        per_word = np.fromiter(map(len, coded), dtype=np.int64, count=len(coded))
        codes = np.fromiter(chain.from_iterable(coded), dtype=np.int64, count=int(per_word.sum()))
        token_texts, token_codes = words.repeat(np.cumsum(per_word) - per_word, per_word, codes)
        # A 0 where a text ends, so that no n-gram crosses into the next text.
        ends = np.flatnonzero(token_texts[1:] != token_texts[:-1]) + 1
        positions, features = self.grams.find(np.insert(token_codes, ends, 0))
        return np.insert(token_texts, ends, -1)[positions], features

    def _code_each(self, words: list[str]) -> list[tuple[int, ...]]:
        code, tokenize, whole = self.codes.get, self.tokenize, self.sitrep_pattern
        return [
            (code(word, 0),)
            if whole and word.isalnum()
            else tuple(map(code, tokenize(word), repeat(0)))
            for word in words
        ]


class _CharGrams:
    """`char_wb` n-grams: found once per distinct word, then counted per text.

    scikit-learn takes the n-grams of each white-space-separated word padded with one space;
    a text's n-grams are its words' n-grams. The words of the model's word vocabulary have
    theirs looked up once, when the model loads (`remember`); the batch's other distinct words
    are searched together, with the characters as codes and the padded words laid end to end,
    separated by code 0, and kept for later batches (`_Memory`): searching is the costliest step
    of a big batch.
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
        self.met: _Memory[bytes] = _Memory()  # words' n-grams, as bytes of int32

    def remember(self, words: list[str]) -> None:
        """Look up the n-grams of these words now, once, and keep them for good."""
        self.met = _Memory(dict(zip(words, self._search_each(words), strict=True)))

    @classmethod
    def fits(cls, vocabulary: dict[str, int]) -> bool:
        alphabet = {char for gram in vocabulary for char in gram}
        longest = max((len(gram) for gram in vocabulary), default=0)
        return _PackedGrams.fits(len(alphabet), longest)

    def find(self, words: _Words) -> Occurrences:
        # Each distinct word's n-grams, laid end to end.
        found = self.met.complete(words.distinct, self._search_each)
        lengths = np.fromiter(map(len, found), dtype=np.int64, count=len(found)) // 4
        features = np.frombuffer(b"".join(found), dtype=np.int32).astype(np.int64)
        # Every occurrence of a word contributes all of its n-grams to its text.
        return words.repeat(np.cumsum(lengths) - lengths, lengths, features)

    def _search_each(self, words: list[str]) -> list[bytes]:
        """Each word's n-grams as the bytes of 32-bit integers: the leanest Python object to
        keep, and a batch's are joined in one step."""
        starts, lengths, features = self._search(words)
        blob = features.astype(np.int32).tobytes()
        ends = (4 * (starts + lengths)).tolist()
        return [blob[start:end] for start, end in zip((4 * starts).tolist(), ends, strict=True)]

    def _search(self, words: list[str]) -> tuple[IntArray, IntArray, IntArray]:
        """The n-grams of each word, laid end to end: (starts, lengths, features)."""
        if not words:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        padded = [f" {word} " for word in words]
        positions, features = self.grams.find(self._codes("\0".join(padded)))
        owners = _owners(positions, [len(word) for word in padded])
        lengths = np.bincount(owners, minlength=len(words))
        return np.cumsum(lengths) - lengths, lengths, features[np.argsort(owners, kind="stable")]

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


def _weights(block: _Block, words: _Words) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Sublinear tf × idf, l2-normalised per text: TfidfVectorizer's arithmetic."""
    text_ids, feature_ids = block.find(words)
    # Count each (text, feature) pair by sorting them as one number; 32-bit numbers sort twice
    # as fast, and they fit while texts × features stays under 2**31.
    kind = np.dtype(np.int32 if words.size * block.width < 2**31 else np.int64)
    keys = text_ids.astype(kind) * np.array(block.width, dtype=kind) + feature_ids.astype(kind)
    keys.sort()
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=len(keys))
    keys = keys[starts].astype(np.int64)
    # The keys are sorted, so each text's are a run: find where each run ends.
    ends = np.searchsorted(keys, np.arange(1, words.size + 1, dtype=np.int64) * block.width)
    rows = np.repeat(np.arange(words.size, dtype=np.int64), np.diff(ends, prepend=0))
    columns = keys - rows * block.width
    values = block.idf[columns]
    if block.sublinear:
        repeated = counts > 1  # 1 + log(1) is 1
        values[repeated] *= np.log(counts[repeated]) + 1.0
    else:
        values *= counts
    norms = np.sqrt(np.bincount(rows, weights=values * values))
    values /= norms[rows]
    return rows, columns, values
