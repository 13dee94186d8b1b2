"""The label set, shared by training and serving so the two can never disagree."""

from typing import Final

MILITARY_LOSS: Final = "military_loss"
CIVILIAN_HARM: Final = "civilian_harm"
POLITICAL_STATEMENT: Final = "political_statement"
FORECAST: Final = "forecast"
OTHER: Final = "other"

# Order matters: it is the column order of every score matrix and artifact.
LABELS: Final[tuple[str, ...]] = (
    MILITARY_LOSS,
    CIVILIAN_HARM,
    POLITICAL_STATEMENT,
    FORECAST,
    OTHER,
)


def decide_labels(scores: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Turn per-label scores into the labels a sentence carries, highest score first.

    Every label at or above its threshold is kept. `other` stands alone: it is returned when no
    label reaches its threshold, or when `other` itself is the highest-scoring label that does.
    """
    passing = sorted(
        (label for label in LABELS if scores[label] >= thresholds[label]),
        key=lambda label: scores[label],
        reverse=True,
    )
    if not passing or passing[0] == OTHER:
        return [OTHER]
    return [label for label in passing if label != OTHER]
