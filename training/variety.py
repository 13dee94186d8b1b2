"""Measure how varied a corpus is: `python -m training.variety data/train.jsonl data/test.jsonl`.

Prints Markdown tables (the data card in data/README.md is this output plus prose): labels,
registers, conflicts and the sides covered in each, multi-label share, sentence lengths, numbers
written as digits and as words, British and American spelling, and headline casing.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.labels import LABELS
from training.corpus import Corpus, CorpusError, read_corpus

DIGITS = re.compile(r"\d")
NUMBER_WORDS = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|twenty|thirty|"
    r"forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?)\b",
    re.IGNORECASE,
)
# Word stems that differ between British and American spelling in this domain.
BRITISH = re.compile(
    r"\b(defence|offence|armour\w*|mobilis\w*|organis\w*|neighbour\w*|programme\w*|centre\w*|"
    r"labour\w*|favour\w*|honour\w*|rumour\w*|harbour\w*|recognis\w*|criticis\w*|apologis\w*|"
    r"authoris\w*|jewellery|travell\w*|colour\w*|metre\w*|calibre)\b",
    re.IGNORECASE,
)
AMERICAN = re.compile(
    r"\b(defense|offense|armor\w*|mobiliz\w*|organiz\w*|neighbor\w*|program|programs|center\w*|"
    r"labor\w*|favor\w*|honor\w*|rumor\w*|harbor\w*|recogniz\w*|criticiz\w*|apologiz\w*|"
    r"authoriz\w*|jewelry|traveled|traveling|color\w*|meter\w*|caliber)\b",
    re.IGNORECASE,
)
LENGTH_BUCKETS = ((4, 9), (10, 19), (20, 29), (30, 44), (45, 60))


@dataclass(frozen=True)
class Variety:
    """The figures measured on one corpus."""

    examples: int
    primary: Counter[str]
    any_position: Counter[str]
    registers: Counter[str]
    conflicts: Counter[str]
    sides: dict[str, Counter[str]]
    multi_label: int
    word_counts: list[int]
    with_digits: int
    with_number_words: int
    british: int
    american: int
    title_case_headlines: int
    headlines_without_verb_hint: int


def measure(corpus: Corpus) -> Variety:
    sides: dict[str, Counter[str]] = defaultdict(Counter)
    title_case = verbless = 0
    for example in corpus.examples:
        sides[example.conflict or "unknown"][example.side or "unknown"] += 1
        if example.register == "headline":
            title_case += _is_title_case(example.text)
            verbless += not _has_verb_hint(example.text)
    texts = corpus.texts
    return Variety(
        examples=len(texts),
        primary=Counter(example.primary for example in corpus.examples),
        any_position=Counter(label for example in corpus.examples for label in example.labels),
        registers=Counter(example.register or "unknown" for example in corpus.examples),
        conflicts=Counter(example.conflict or "unknown" for example in corpus.examples),
        sides=dict(sides),
        multi_label=sum(len(example.labels) > 1 for example in corpus.examples),
        word_counts=[len(text.split()) for text in texts],
        with_digits=sum(bool(DIGITS.search(text)) for text in texts),
        with_number_words=sum(bool(NUMBER_WORDS.search(text)) for text in texts),
        british=sum(bool(BRITISH.search(text)) for text in texts),
        american=sum(bool(AMERICAN.search(text)) for text in texts),
        title_case_headlines=title_case,
        headlines_without_verb_hint=verbless,
    )


def render(name: str, variety: Variety) -> str:
    total = variety.examples
    lines = [
        f"### {name}: {total} sentences",
        "",
        "| label | as primary | in any position |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {label} | {variety.primary[label]} | {variety.any_position[label]} |"
        for label in LABELS
    ]
    lines += [
        "",
        f"- sentences with two or more labels: {variety.multi_label} "
        f"({_share(variety.multi_label, total)})",
        f"- words per sentence: {min(variety.word_counts)} to {max(variety.word_counts)}, median "
        f"{sorted(variety.word_counts)[total // 2]}; "
        + ", ".join(
            f"{low}–{high}: {sum(low <= n <= high for n in variety.word_counts)}"
            for low, high in LENGTH_BUCKETS
        ),
        f"- numbers: {variety.with_digits} sentences with digits, {variety.with_number_words} with "
        "numbers in words",
        f"- spelling: {variety.british} sentences with British forms (defence, mobilisation, "
        f"armoured…), {variety.american} with American forms (defense, mobilization, armored…)",
        f"- headlines: {variety.registers['headline']}, of which {variety.title_case_headlines} in "
        f"Title Case and {variety.headlines_without_verb_hint} with no common verb form",
        "",
        "| register | sentences | share |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {register} | {count} | {_share(count, total)} |"
        for register, count in variety.registers.most_common()
    ]
    lines += ["", "| conflict | sentences | sides (sentences) |", "| --- | ---: | --- |"]
    for conflict, count in variety.conflicts.most_common():
        sides = ", ".join(f"{side} {n}" for side, n in variety.sides[conflict].most_common())
        lines.append(f"| {conflict} | {count} | {sides} |")
    return "\n".join(lines) + "\n"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def _is_title_case(text: str) -> bool:
    words = [word for word in re.findall(r"[A-Za-z][A-Za-z'’-]*", text) if len(word) > 3]
    return len(words) >= 2 and all(word[0].isupper() for word in words)


_VERB_HINT = re.compile(
    r"\b(is|are|was|were|be|been|has|have|had|says?|said|will|would|could|may|might|can|"
    r"\w+(ed|es|ing))\b",
    re.IGNORECASE,
)


def _has_verb_hint(text: str) -> bool:
    return bool(_VERB_HINT.search(text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.variety", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="corpus files (JSON Lines or CSV)")
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            corpus = read_corpus(path, min_examples_per_label=0)
        except CorpusError as error:
            print(error, file=sys.stderr)
            return 2
        print(render(str(path), measure(corpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
