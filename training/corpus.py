"""Read and validate a labeled corpus (JSON Lines or CSV).

Every problem is reported as `file:line: reason`, all problems of a file at once, so a user
fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from service.labels import LABELS, OTHER

MAX_TEXT_CHARS = 5_000
MIN_EXAMPLES_PER_LABEL = 20
CSV_LABEL_SEPARATOR = "|"
_PUNCTUATION_OR_SPACE = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Example:
    """One labeled sentence; `labels[0]` is its primary label."""

    text: str
    labels: tuple[str, ...]
    line: int
    conflict: str | None = None
    register: str | None = None
    side: str | None = None

    @property
    def primary(self) -> str:
        return self.labels[0]


@dataclass(frozen=True)
class Corpus:
    """The validated examples of one file and the SHA-256 of its bytes."""

    path: Path
    examples: list[Example]
    sha256: str

    @property
    def texts(self) -> list[str]:
        return [example.text for example in self.examples]

    @property
    def primary_labels(self) -> list[str]:
        return [example.primary for example in self.examples]

    def label_matrix(self) -> npt.NDArray[np.int_]:
        """Indicator matrix, one column per label in `LABELS` order."""
        return (self.graded_label_matrix() > 0).astype(int)

    def graded_label_matrix(self) -> npt.NDArray[np.int_]:
        """Like `label_matrix`, but 2 marks the primary label and 1 a secondary one."""
        matrix = np.zeros((len(self.examples), len(LABELS)), dtype=int)
        for row, example in enumerate(self.examples):
            for position, label in enumerate(example.labels):
                matrix[row, LABELS.index(label)] = 2 if position == 0 else 1
        return matrix


@dataclass(frozen=True)
class CorpusProblem:
    path: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"


@dataclass
class CorpusError(Exception):
    """A corpus failed validation; `problems` lists every reason found."""

    problems: list[CorpusProblem] = field(default_factory=list)

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} found:"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def normalise_text(text: str) -> str:
    """Case-, accent-, punctuation- and space-insensitive form used to find duplicates."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    folded = "".join(char for char in folded if not unicodedata.combining(char))
    return _PUNCTUATION_OR_SPACE.sub(" ", folded).strip()


def read_corpus(path: Path, *, min_examples_per_label: int = MIN_EXAMPLES_PER_LABEL) -> Corpus:
    """Read and validate a corpus file; raise `CorpusError` listing every problem found."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError([CorpusProblem(path, None, f"cannot read file: {exc.strerror}")]) from exc
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        rows, problems = _parse_json_lines(path, raw)
    elif suffix == ".csv":
        rows, problems = _parse_csv(path, raw)
    else:
        raise CorpusError(
            [CorpusProblem(path, None, f"unknown file type {suffix!r}: use .jsonl or .csv")]
        )

    examples: list[Example] = []
    first_seen: dict[str, int] = {}
    for line, record in rows:
        example, reasons = _validate_record(record, line)
        if example is not None:
            key = normalise_text(example.text)
            if key in first_seen:
                reasons.append(f"duplicate of line {first_seen[key]}")
            else:
                first_seen[key] = line
        problems += [CorpusProblem(path, line, reason) for reason in reasons]
        if example is not None and not reasons:
            examples.append(example)

    if not rows and not problems:
        problems.append(CorpusProblem(path, None, "the file holds no examples"))
    counts = Counter(label for example in examples for label in example.labels)
    for label in LABELS:
        if rows and counts[label] < min_examples_per_label:
            problems.append(
                CorpusProblem(
                    path,
                    None,
                    f"label {label!r} has {counts[label]} examples, "
                    f"at least {min_examples_per_label} are needed",
                )
            )
    if problems:
        raise CorpusError(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
    return Corpus(path=path, examples=examples, sha256=hashlib.sha256(raw).hexdigest())


def _parse_json_lines(path: Path, raw: bytes) -> tuple[list[tuple[int, Any]], list[CorpusProblem]]:
    rows: list[tuple[int, Any]] = []
    problems: list[CorpusProblem] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(CorpusProblem(path, number, f"invalid UTF-8 at byte {exc.start}"))
            continue
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(
                CorpusProblem(path, number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            )
    return rows, problems


def _parse_csv(path: Path, raw: bytes) -> tuple[list[tuple[int, Any]], list[CorpusProblem]]:
    # surrogateescape keeps going past bad bytes so every bad line is reported, not just the first.
    text = raw.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [name for name in ("text", "labels") if name not in (reader.fieldnames or [])]
    if missing:
        found = ", ".join(reader.fieldnames or []) or "none"
        reason = f"missing column {', '.join(map(repr, missing))} (columns found: {found})"
        return [], [CorpusProblem(path, 1, reason)]
    rows: list[tuple[int, Any]] = []
    problems: list[CorpusProblem] = []
    start = reader.line_num + 1
    for record in reader:
        values = [value for value in record.values() if isinstance(value, str)]
        if any(_has_escaped_bytes(value) for value in values):
            problems.append(CorpusProblem(path, start, "invalid UTF-8"))
        else:
            labels = record.get("labels") or ""
            parsed = dict(record)
            parsed["labels"] = [part.strip() for part in labels.split(CSV_LABEL_SEPARATOR)]
            if labels.strip() == "":
                parsed["labels"] = []
            rows.append((start, parsed))
        start = reader.line_num + 1
    return rows, problems


def _has_escaped_bytes(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _validate_record(record: Any, line: int) -> tuple[Example | None, list[str]]:
    if not isinstance(record, dict):
        return None, [f"expected a JSON object, got {type(record).__name__}"]
    reasons: list[str] = []
    for name in ("text", "labels"):
        if name not in record:
            reasons.append(f"missing field {name!r}")
    if reasons:
        return None, reasons

    text = record["text"]
    if not isinstance(text, str):
        reasons.append(f"'text' must be a string, got {type(text).__name__}")
    elif not text.strip():
        reasons.append("'text' is empty or whitespace")
    elif len(text) > MAX_TEXT_CHARS:
        reasons.append(f"'text' has {len(text)} characters, at most {MAX_TEXT_CHARS} are allowed")

    labels = record["labels"]
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        reasons.append("'labels' must be a list of strings")
        labels = []
    elif not labels:
        reasons.append("'labels' is empty: give at least one label")
    for label in labels:
        if label not in LABELS:
            reasons.append(f"unknown label {label!r}: labels must be one of {', '.join(LABELS)}")
    if len(set(labels)) != len(labels):
        reasons.append(f"a label is repeated in {labels}")
    if OTHER in labels and len(labels) > 1:
        reasons.append(f"{OTHER!r} stands alone, got {labels}")

    if reasons:
        return None, reasons
    return (
        Example(
            text=text.strip(),
            labels=tuple(labels),
            line=line,
            conflict=_optional_str(record.get("conflict")),
            register=_optional_str(record.get("register")),
            side=_optional_str(record.get("side")),
        ),
        [],
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
