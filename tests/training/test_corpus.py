"""Corpus validation: every problem named by file and line, all at once, nothing half-read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.labels import LABELS
from training.corpus import CorpusError, normalise_text, read_corpus


def valid_rows(per_label: int = 20) -> list[dict[str, object]]:
    return [
        {"text": f"Sentence number {index} about {label} in the war.", "labels": [label]}
        for label in LABELS
        for index in range(per_label)
    ]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def problems_of(path: Path, **kwargs: int) -> list[str]:
    with pytest.raises(CorpusError) as caught:
        read_corpus(path, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_valid_jsonl_is_read_with_its_labels_in_order(tmp_path: Path) -> None:
    rows = valid_rows(per_label=21)
    rows[0]["labels"] = ["civilian_harm", "political_statement"]
    corpus = read_corpus(write_jsonl(tmp_path / "ok.jsonl", rows))
    assert len(corpus.examples) == len(rows)
    assert corpus.examples[0].labels == ("civilian_harm", "political_statement")
    assert corpus.label_matrix()[0].tolist() == [0, 1, 1, 0, 0]
    assert len(corpus.sha256) == 64


def test_every_problem_of_a_file_is_listed_with_its_line(tmp_path: Path) -> None:
    rows: list[object] = valid_rows()
    rows[2] = {"text": "Troops advanced.", "labels": ["civilian"]}
    rows[5] = {"text": "   ", "labels": ["other"]}
    rows[7] = {"text": "x" * 5_001, "labels": ["other"]}
    rows[9] = {"labels": ["other"]}
    rows[11] = {"text": "Talks resumed.", "labels": ["other", "forecast"]}
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"text": "unterminated\n')
    problems = problems_of(path)
    assert any(p.startswith(f"{path}:3: unknown label 'civilian'") for p in problems)
    assert any(p.startswith(f"{path}:6: 'text' is empty") for p in problems)
    assert any(p.startswith(f"{path}:8: 'text' has 5001 characters") for p in problems)
    assert any(p.startswith(f"{path}:10: missing field 'text'") for p in problems)
    assert any(p.startswith(f"{path}:12: 'other' stands alone") for p in problems)
    assert any(p.startswith(f"{path}:101: invalid JSON") for p in problems)


def test_invalid_utf8_is_reported_by_line_and_the_rest_still_checked(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bytes.jsonl", valid_rows())
    with path.open("ab") as handle:
        handle.write(b'{"text": "caf\xe9 shelled", "labels": ["civilian_harm"]}\n')
        handle.write(b'{"text": "", "labels": ["other"]}\n')
    problems = problems_of(path)
    assert any(":101: invalid UTF-8" in p for p in problems)
    assert any(":102: 'text' is empty" in p for p in problems)


def test_duplicates_are_found_whatever_the_case_spacing_or_punctuation(tmp_path: Path) -> None:
    rows = valid_rows()
    rows.append(
        {"text": "  SENTENCE number 3 about military_loss, in the war!", "labels": ["other"]}
    )
    problems = problems_of(write_jsonl(tmp_path / "dup.jsonl", rows))
    assert problems == [f"{tmp_path / 'dup.jsonl'}:101: duplicate of line 4"]


def test_too_few_examples_of_a_label_is_an_error(tmp_path: Path) -> None:
    rows = [row for row in valid_rows() if row["labels"] != ["forecast"]][:-1]
    rows += valid_rows(per_label=20)[60:79]  # 19 forecasts
    problems = problems_of(write_jsonl(tmp_path / "few.jsonl", rows))
    assert any("label 'forecast' has 19 examples, at least 20 are needed" in p for p in problems)


def test_csv_with_pipe_separated_labels(tmp_path: Path) -> None:
    lines = ["text,labels,register"]
    lines += [f'"Line {i}, about {label}",{label},wire' for i, label in enumerate(LABELS * 20)]
    lines.append('"Minister condemns strike on clinic","political_statement|civilian_harm",wire')
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.examples[-1].labels == ("political_statement", "civilian_harm")
    assert corpus.examples[-1].line == 102
    assert corpus.examples[0].register == "wire"


def test_csv_missing_column_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    path.write_text("sentence,labels\nhello,other\n", encoding="utf-8")
    assert problems_of(path) == [
        f"{path}:1: missing column 'text' (columns found: sentence, labels)"
    ]
    bad = tmp_path / "bytes.csv"
    bad.write_bytes(b"text,labels\nfine text here,other\nbad \xff bytes,other\n")
    assert any(":3: invalid UTF-8" in p for p in problems_of(bad, min_examples_per_label=0))


def test_unknown_file_type_and_missing_file(tmp_path: Path) -> None:
    missing = problems_of(tmp_path / "nope.jsonl")
    assert missing == [f"{tmp_path / 'nope.jsonl'}: cannot read file: No such file or directory"]
    other = tmp_path / "x.txt"
    other.write_text("hello\n")
    assert problems_of(other) == [f"{other}: unknown file type '.txt': use .jsonl or .csv"]


def test_normalise_text_folds_case_accents_and_punctuation() -> None:
    assert normalise_text("Kyïv — SHELLED!") == normalise_text("kyiv shelled")
    assert normalise_text("two soldiers") != normalise_text("three soldiers")
