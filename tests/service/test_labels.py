"""How scores and thresholds become the labels a sentence carries."""

from __future__ import annotations

import numpy as np

from service.labels import LABELS, decide_label_rows

THRESHOLDS = dict.fromkeys(LABELS, 0.5)


def _decide(*rows: list[float]) -> list[list[str]]:
    return decide_label_rows(np.array(rows), THRESHOLDS)


def test_labels_at_or_above_threshold_highest_first() -> None:
    assert _decide([0.2, 0.7, 0.9, 0.5, 0.1]) == [
        ["political_statement", "civilian_harm", "forecast"]
    ]


def test_other_when_nothing_passes_or_other_leads() -> None:
    assert _decide([0.1, 0.2, 0.3, 0.4, 0.45], [0.6, 0.1, 0.1, 0.1, 0.8]) == [["other"], ["other"]]


def test_other_never_accompanies_another_label() -> None:
    assert _decide([0.1, 0.9, 0.1, 0.1, 0.6]) == [["civilian_harm"]]


def test_equal_scores_keep_label_order_and_rows_stay_apart() -> None:
    rows = _decide([0.8, 0.8, 0.0, 0.0, 0.0], [0.0, 0.0, 0.7, 0.7, 0.0])
    assert rows == [["military_loss", "civilian_harm"], ["political_statement", "forecast"]]


def test_each_label_has_its_own_threshold() -> None:
    thresholds = {**THRESHOLDS, "forecast": 0.3}
    assert decide_label_rows(np.array([[0.1, 0.1, 0.1, 0.35, 0.2]]), thresholds) == [["forecast"]]


def test_a_batch_decides_every_row_as_it_would_alone() -> None:
    # Few distinct scores: many ties, and rows that share a pattern with others.
    rows = np.random.default_rng(0).choice([0.1, 0.4, 0.5, 0.8], size=(2_000, len(LABELS)))
    together = decide_label_rows(rows, THRESHOLDS)
    assert together == [decide_label_rows(row[None, :], THRESHOLDS)[0] for row in rows]
    for row, labels in zip(rows, together, strict=True):
        scores = [row[LABELS.index(label)] for label in labels]
        assert scores == sorted(scores, reverse=True)
        if labels != ["other"]:
            assert min(scores) >= 0.5
            assert "other" not in labels
    same = [labels for labels in together if labels == together[0]]
    same[0].append("changed")  # every row gets a list of its own
    assert same[1] != same[0]
