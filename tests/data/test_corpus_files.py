"""The committed corpus: valid, varied, big enough, with an honest, separate test split and a
development split written apart from both."""

from __future__ import annotations

from collections import Counter
from functools import cache
from itertools import combinations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from service.labels import LABELS
from tests.conftest import DEV_DATA, REPO, TEST_DATA, TRAIN_DATA
from training.corpus import Corpus, read_corpus
from training.variety import measure, render

REGISTERS = {"wire", "headline", "official", "analyst", "ngo", "social"}
NEAR_DUPLICATE = 0.9


SPLITS = {"train": TRAIN_DATA, "test": TEST_DATA, "dev": DEV_DATA}


@cache
def corpus(split: str) -> Corpus:
    # read_corpus fails on bad rows, duplicates (after normalisation) and thin labels.
    return read_corpus(SPLITS[split])


def test_training_data_is_large_and_covers_every_label() -> None:
    examples = corpus("train").examples
    assert len(examples) >= 5_000
    counts = Counter(label for example in examples for label in example.labels)
    assert all(counts[label] >= 700 for label in LABELS), counts
    assert sum(len(example.labels) > 1 for example in examples) >= 500


def test_test_split_is_large_and_balanced() -> None:
    examples = corpus("test").examples
    assert len(examples) >= 1_000
    primary = Counter(example.primary for example in examples)
    assert min(primary[label] for label in LABELS) >= 150, primary


def test_variety_of_conflicts_registers_sides_and_form() -> None:
    examples = corpus("train").examples
    conflicts = Counter(example.conflict for example in examples)
    assert len(conflicts) >= 12
    assert conflicts.most_common(1)[0][1] / len(examples) < 0.3, "one conflict dominates"
    assert {example.register for example in examples} == REGISTERS
    sides: dict[str | None, set[str | None]] = {}
    for example in examples:
        sides.setdefault(example.conflict, set()).add(example.side)
    for conflict, seen in sides.items():
        if conflict != "global":
            assert len(seen - {"neutral"}) >= 2, f"{conflict} is told from one side only"
    variety = measure(corpus("train"))
    assert min(variety.word_counts) >= 4
    assert max(variety.word_counts) <= 60
    assert variety.with_digits > 1_000
    assert variety.with_number_words > 500
    assert variety.british > 150
    assert variety.american > 150
    assert variety.title_case_headlines > 200


def test_development_split_is_balanced() -> None:
    primary = Counter(example.primary for example in corpus("dev").examples)
    assert min(primary[label] for label in LABELS) >= 150, primary


def test_each_split_is_about_its_own_conflicts() -> None:
    conflicts = {
        split: {example.conflict for example in corpus(split).examples} for split in SPLITS
    }
    for one, another in combinations(SPLITS, 2):
        assert not conflicts[one] & conflicts[another], (one, another)


def test_no_near_duplicates_across_or_within_splits() -> None:
    texts = {split: corpus(split).texts for split in SPLITS}
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit(
        [text for split in SPLITS for text in texts[split]]
    )
    matrices = {split: vectors.transform(texts[split]) for split in SPLITS}
    for one, another in combinations(SPLITS, 2):
        cross = (matrices[one] @ matrices[another].T).tocoo()
        pairs = [
            (texts[one][i], texts[another][j])
            for i, j, v in zip(cross.row, cross.col, cross.data, strict=True)
            if v > NEAR_DUPLICATE
        ]
        assert not pairs, pairs[:5]
        assert np.isfinite(cross.data).all()
    for split, matrix in matrices.items():
        within = (matrix @ matrix.T).tocoo()
        mask = (within.row < within.col) & (within.data > NEAR_DUPLICATE)
        close = [
            (texts[split][i], texts[split][j])
            for i, j in zip(within.row[mask], within.col[mask], strict=True)
        ]
        assert not close, close[:5]


def test_data_card_shows_the_current_figures() -> None:
    card = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    for split, path in SPLITS.items():
        tables = render(f"data/{path.name}", measure(corpus(split)))
        assert tables in card, f"data/README.md is stale for {path.name}; rerun training.variety"
