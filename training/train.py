"""Train a model end to end: validate data, select, calibrate, evaluate, write the artifact."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from joblib import parallel_config

from service.artifact import PROFILES, library_versions, new_version, write_artifact
from service.encoder import SentenceEmbedder, installed_encoder, set_thread_count
from training.corpus import Corpus, CorpusError, CorpusProblem, normalise_text, read_corpus
from training.finetune import FinetuneSettings, finetune_encoder, torch_modules
from training.finetune import describe as describe_finetuning
from training.metrics import evaluate
from training.pipeline import (
    EMBEDDING_STEP,
    ModelParams,
    PrecomputedEmbeddings,
    build_pipeline,
    embedder_of,
)
from training.report import (
    CONFUSION_PNG,
    RELIABILITY_PNG,
    confusion_matrix_png,
    pyplot,
    reliability_png,
    render_markdown,
)
from training.select import CANDIDATES_BY_PROFILE, Progress, select_model, tune_thresholds


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """What `sitrep train` takes from its command line."""

    data: Path
    test: Path | None = None
    out: Path = Path("models")
    seed: int = 0
    folds: int = 5
    jobs: int = 2
    profile: str = "fast"
    # The accurate profile fine-tunes its encoder for this many epochs first (training/finetune.py);
    # 0 keeps the encoder as shipped.
    finetune_epochs: int = FinetuneSettings().epochs


def load_training_data(options: TrainOptions) -> tuple[Corpus, Corpus | None]:
    """Validate the training and test files together, so every problem is listed in one run."""
    problems: list[CorpusProblem] = []
    train_corpus = test_corpus = None
    try:
        train_corpus = read_corpus(options.data)
    except CorpusError as error:
        problems += error.problems
    if options.test is not None:
        try:
            test_corpus = read_corpus(options.test, min_examples_per_label=0)
        except CorpusError as error:
            problems += error.problems
    if train_corpus is not None and test_corpus is not None:
        problems += _leaks(train_corpus, test_corpus)
    if problems:
        raise CorpusError(problems)
    assert train_corpus is not None
    return train_corpus, test_corpus


def train(
    options: TrainOptions,
    progress: Progress,
    *,
    candidates: Sequence[ModelParams] | None = None,
) -> Path:
    """Run the whole training and return the directory of the new artifact.

    `candidates` default to the profile's (training/select.py); all must be of that profile.
    """
    if options.profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {options.profile!r}")
    if options.finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be 0 or more, got {options.finetune_epochs}")
    candidates = CANDIDATES_BY_PROFILE[options.profile] if candidates is None else candidates
    foreign = [params.describe() for params in candidates if params.profile != options.profile]
    if foreign:
        raise ValueError(f"candidates for the {options.profile} profile, got {foreign}")
    pyplot()  # fail now, not after minutes of training, when matplotlib is missing
    encoder = None
    if options.profile == "accurate":
        encoder = installed_encoder()  # fail now too when the accurate extra is missing
        if options.finetune_epochs > 0:
            torch_modules()  # or the fine-tuning extra
        set_thread_count(options.jobs)  # sentences are encoded on as many threads as jobs
    started = time.perf_counter()
    created = datetime.now(UTC)
    train_corpus, test_corpus = load_training_data(options)
    progress(f"read {len(train_corpus.examples)} training sentences from {options.data}")
    texts = train_corpus.texts
    indicator = train_corpus.label_matrix()
    graded = train_corpus.graded_label_matrix()
    primary = train_corpus.primary_labels
    embeddings = tuned = None
    fine_tuned: dict[str, Any] | None = None
    if encoder is not None:
        if options.finetune_epochs > 0:
            settings = FinetuneSettings(epochs=options.finetune_epochs)
            progress(
                f"fine-tuning the encoder on {len(texts)} sentences ({settings.epochs} epochs)"
            )
            tuned = finetune_encoder(
                texts,
                graded,
                settings=settings,
                seed=options.seed,
                threads=options.jobs,
                progress=progress,
            ).weights
            fine_tuned = describe_finetuning(settings, tuned)
        # Embedding every training sentence once, for all folds and the final fit. A tuned
        # encoder has seen every training sentence, so the folds' embeddings are not out of
        # sample; the test split is the fair measure (docs/decisions/0001-sentence-encoder.md).
        progress(f"embedding {len(texts)} training sentences ({encoder.package} {encoder.version})")
        embeddings = PrecomputedEmbeddings.of(texts, embedder=SentenceEmbedder(tuned=tuned))

    best, results = select_model(
        texts,
        graded,
        primary,
        candidates=candidates,
        seed=options.seed,
        folds=options.folds,
        n_jobs=options.jobs,
        embeddings=embeddings,
        progress=progress,
    )
    thresholds = tune_thresholds(indicator, best.out_of_fold)
    progress(f"chose {best.params.describe()}; fitting it on all training data")
    model = build_pipeline(best.params, seed=options.seed)
    embedder = embedder_of(model)
    if embedder is not None:
        model.set_params(**{f"features__{EMBEDDING_STEP}": embeddings})
    # Labels are fitted in parallel processes; the artifact keeps n_jobs=None, so predictions
    # stay single-threaded in the service. Not threads: liblinear draws from the C library's
    # one random generator, so threads sharing it made the same seed give different models.
    # max_nbytes=None hands each process its own writable copy of the features.
    with parallel_config(backend="loky", n_jobs=options.jobs, max_nbytes=None):
        model.fit(np.asarray(texts, dtype=object), graded)
    if embedder is not None:
        # The artifact holds the real encoder, which needs no fitting beyond its checks.
        embedder = SentenceEmbedder(max_tokens=embedder.max_tokens, tuned=tuned).fit(texts[:1])
        model.set_params(**{f"features__{EMBEDDING_STEP}": embedder})

    metrics: dict[str, Any] = {
        "cross_validation": evaluate(
            [example.labels for example in train_corpus.examples], best.out_of_fold, thresholds
        )
    }
    extra_files: dict[str, bytes] = {}
    data: dict[str, Any] = {"train": _describe(train_corpus)}
    if test_corpus is not None:
        progress(f"evaluating on {len(test_corpus.examples)} test sentences from {options.test}")
        probabilities = np.asarray(model.predict_proba(test_corpus.texts), dtype=float)
        test_metrics = evaluate(
            [example.labels for example in test_corpus.examples], probabilities, thresholds
        )
        metrics["test"] = test_metrics
        data["test"] = _describe(test_corpus)
        extra_files[CONFUSION_PNG] = confusion_matrix_png(
            test_metrics["confusion_matrix"]["rows_gold_columns_predicted"],
            f"Test split, primary label (macro-F1 {test_metrics['primary']['macro_f1']:.3f})",
        )
        extra_files[RELIABILITY_PNG] = reliability_png(
            test_corpus.label_matrix(),
            probabilities,
            test_metrics["ece"]["per_label_scores"],
            "Test split, per-label scores",
        )

    version = new_version(train_corpus.sha256, created)
    metadata: dict[str, Any] = {
        "created": created.isoformat(timespec="seconds"),
        "profile": options.profile,
        "seed": options.seed,
        "params": best.params.as_dict(),
        "thresholds": thresholds,
        "data": data,
        "metrics": metrics,
        "selection": {
            "folds": options.folds,
            "criterion": "primary-label macro-F1 of out-of-fold predictions on the training data",
            "candidates": [
                {
                    "description": candidate.params.describe(),
                    "params": candidate.params.as_dict(),
                    "macro_f1": candidate.macro_f1,
                    "seconds": round(candidate.seconds, 2),
                    "chosen": candidate is best,
                }
                for candidate in results
            ],
        },
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    if encoder is not None and embedder is not None:
        # What service/artifact.py checks before it serves the model.
        metadata["encoder"] = encoder.describe(max_tokens=embedder.max_tokens)
        if fine_tuned is not None:
            metadata["encoder"]["fine_tuned"] = fine_tuned
    report = render_markdown({**metadata, "version": version, "libraries": library_versions()})
    extra_files["report.md"] = report.encode()
    path = write_artifact(options.out, version, model, metadata, extra_files)
    progress(f"wrote {path} in {time.perf_counter() - started:.1f}s")
    return path


def _describe(corpus: Corpus) -> dict[str, Any]:
    return {"path": str(corpus.path), "sha256": corpus.sha256, "examples": len(corpus.examples)}


def _leaks(train_corpus: Corpus, test_corpus: Corpus) -> list[CorpusProblem]:
    """A test sentence that is also a training sentence would flatter the reported score."""
    seen = {normalise_text(example.text): example.line for example in train_corpus.examples}
    return [
        CorpusProblem(
            test_corpus.path,
            example.line,
            f"also in the training data ({train_corpus.path}:{seen[normalise_text(example.text)]})",
        )
        for example in test_corpus.examples
        if normalise_text(example.text) in seen
    ]
