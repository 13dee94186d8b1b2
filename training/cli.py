"""`sitrep train` / `python -m training` and `sitrep evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from service.artifact import METADATA_FILE, PROFILES, ArtifactError, load_artifact
from training.corpus import CorpusError, read_corpus
from training.finetune import FinetuneSettings
from training.metrics import evaluate
from training.train import TrainOptions, train

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="training data: JSON Lines, or CSV with 'text' and 'labels' (a|b)",
    )
    parser.add_argument(
        "--test",
        type=Path,
        default=None,
        help="separately written test split, used only for the reported scores",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("models"),
        help="model directory to write the new artifact into (default: models/)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--folds",
        type=int,
        default=5,
        help="cross-validation folds for model selection (default: 5)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes (default: 2)")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="fast",
        help="fast: TF-IDF n-grams; accurate: n-grams and sentence embeddings from an encoder "
        "fine-tuned on the data, needs pip install 'sitrep[finetune]' (default: fast)",
    )
    parser.add_argument(
        "--finetune-epochs",
        type=int,
        default=FinetuneSettings().epochs,
        metavar="N",
        help="accurate profile: fine-tune the encoder for N epochs first; 0 keeps it as shipped "
        "and needs only pip install 'sitrep[accurate]' (default: %(default)s)",
    )


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="an artifact directory, or a model directory (its newest artifact)",
    )
    parser.add_argument("--data", type=Path, required=True, help="labeled JSON Lines or CSV file")
    parser.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="PATH",
        help="also write the metrics as JSON to PATH ('-' for standard output)",
    )


def run_train(args: argparse.Namespace) -> int:
    options = TrainOptions(
        data=args.data,
        test=args.test,
        out=args.out,
        seed=args.seed,
        folds=args.folds,
        jobs=args.jobs,
        profile=args.profile,
        finetune_epochs=args.finetune_epochs,
    )
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        path = train(options, progress)
    except CorpusError as error:
        print(f"sitrep train: nothing was written; {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ArtifactError, OSError, ValueError, RuntimeError) as error:
        print(f"sitrep train: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(path)
    return EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    model_path: Path = args.model
    try:
        if (model_path / METADATA_FILE).is_file():
            artifact = load_artifact(model_path.parent, model_path.name)
        else:
            artifact = load_artifact(model_path)
        corpus = read_corpus(args.data, min_examples_per_label=0)
    except (ArtifactError, CorpusError) as error:
        print(f"sitrep evaluate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    probabilities = np.asarray(artifact.estimator.predict_proba(corpus.texts), dtype=float)
    metrics = evaluate(
        [example.labels for example in corpus.examples], probabilities, artifact.thresholds
    )
    metrics["model"] = {"version": artifact.version, "data": str(args.data)}
    print(format_metrics(metrics))
    if args.json_out == "-":
        print(json.dumps(metrics, indent=2))
    elif args.json_out:
        Path(args.json_out).write_text(json.dumps(metrics, indent=2) + "\n")
    return EXIT_OK


def format_metrics(metrics: dict[str, object]) -> str:
    """A plain-text table of per-label metrics for the terminal."""
    primary = metrics["primary"]
    assert isinstance(primary, dict)
    rows = [
        f"model {metrics['model']['version']} on {metrics['model']['data']}: "  # type: ignore[index]
        f"{metrics['examples']} sentences",
        f"{'label':<20} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}",
    ]
    for label, scores in primary["per_label"].items():
        rows.append(
            f"{label:<20} {scores['precision']:>9.3f} {scores['recall']:>7.3f} "
            f"{scores['f1']:>6.3f} {scores['support']:>8}"
        )
    ece = metrics["ece"]
    assert isinstance(ece, dict)
    rows += [
        f"primary macro-F1 {primary['macro_f1']:.3f}   accuracy {primary['accuracy']:.3f}   "
        f"lenient macro-F1 {metrics['lenient_macro_f1']:.3f}",
        f"multi-label macro-F1 {metrics['multilabel']['macro_f1']:.3f}   "  # type: ignore[index]
        f"ECE {ece['per_label_scores']:.3f}",
    ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training`: the same options as `sitrep train`."""
    parser = argparse.ArgumentParser(prog="python -m training", description="Train a sitrep model.")
    add_train_arguments(parser)
    return run_train(parser.parse_args(argv))
