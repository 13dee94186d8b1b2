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
from scipy.special import expit
from sklearn.pipeline import Pipeline

from service.artifact import PROFILES, library_versions, new_version, write_artifact
from service.encoder import (
    InstalledEncoder,
    SentenceEmbedder,
    installed_encoder,
    set_thread_count,
)
from training import fusion
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
from training.select import (
    CANDIDATES_BY_PROFILE,
    CandidateResult,
    Progress,
    select_model,
    tune_thresholds,
)


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

    `candidates` default to the profile's (training/select.py); all must be of the kind that
    `selection_profile` names.
    """
    if options.profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {options.profile!r}")
    if options.finetune_epochs < 0:
        raise ValueError(f"finetune_epochs must be 0 or more, got {options.finetune_epochs}")
    kind = selection_profile(options.profile, options.finetune_epochs)
    candidates = CANDIDATES_BY_PROFILE[kind] if candidates is None else candidates
    foreign = [params.describe() for params in candidates if params.profile != kind]
    if foreign:
        raise ValueError(
            f"the {options.profile} profile here selects among {kind} candidates, got {foreign}"
        )
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
    if encoder is not None and options.finetune_epochs > 0:
        fitted = _fit_fused(options, train_corpus, candidates, progress)
    else:
        fitted = _fit_one_model(options, train_corpus, candidates, progress, encoder)
    model, best, thresholds = fitted.model, fitted.best, fitted.thresholds
    metrics: dict[str, Any] = dict(fitted.metrics)
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
                for candidate in fitted.results
            ],
        },
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    embedder = embedder_of(model)
    if encoder is not None and embedder is not None:
        # What service/artifact.py checks before it serves the model.
        metadata["encoder"] = encoder.describe(max_tokens=embedder.max_tokens)
        if fitted.fine_tuned is not None:
            metadata["encoder"]["fine_tuned"] = fitted.fine_tuned
    if fitted.fusion is not None:
        metadata["fusion"] = fitted.fusion
    report = render_markdown({**metadata, "version": version, "libraries": library_versions()})
    extra_files["report.md"] = report.encode()
    path = write_artifact(options.out, version, model, metadata, extra_files)
    progress(f"wrote {path} in {time.perf_counter() - started:.1f}s")
    return path


@dataclass(frozen=True)
class FittedModel:
    """A trained model with what its metadata records about how it was chosen and fitted."""

    model: Pipeline
    best: CandidateResult
    results: list[CandidateResult]
    thresholds: dict[str, float]
    metrics: dict[str, Any]  # scores on the training data: out of fold, or held out
    fine_tuned: dict[str, Any] | None = None
    fusion: dict[str, Any] | None = None


def selection_profile(profile: str, finetune_epochs: int) -> str:
    """Whose candidates model selection compares: an accurate model with a fine-tuned encoder is
    a fast model fused with the encoder's head (training/fusion.py), so it selects fast's."""
    return "fast" if profile == "accurate" and finetune_epochs > 0 else profile


def _fit_one_model(
    options: TrainOptions,
    corpus: Corpus,
    candidates: Sequence[ModelParams],
    progress: Progress,
    encoder: InstalledEncoder | None,
) -> FittedModel:
    """Select by cross-validation and fit one pipeline: the fast profile, or (given the
    installed encoder) the accurate one on the encoder as shipped."""
    texts = corpus.texts
    embeddings = None
    if encoder is not None:
        # Embedding every training sentence once, for all folds and the final fit.
        progress(f"embedding {len(texts)} training sentences ({encoder.package} {encoder.version})")
        embeddings = PrecomputedEmbeddings.of(texts, embedder=SentenceEmbedder())
    best, results, model = _select_and_fit(options, corpus, candidates, progress, embeddings)
    if embeddings is not None:
        # The artifact holds the real encoder, which needs no fitting beyond its checks.
        embedder = SentenceEmbedder().fit(texts[:1])
        model.set_params(**{f"features__{EMBEDDING_STEP}": embedder})
    thresholds = tune_thresholds(corpus.label_matrix(), best.out_of_fold)
    labels = [example.labels for example in corpus.examples]
    return FittedModel(
        model=model,
        best=best,
        results=results,
        thresholds=thresholds,
        metrics={"cross_validation": evaluate(labels, best.out_of_fold, thresholds)},
    )


def _fit_fused(
    options: TrainOptions,
    corpus: Corpus,
    candidates: Sequence[ModelParams],
    progress: Progress,
) -> FittedModel:
    """The accurate profile with a fine-tuned encoder: fine-tune on most of the data, select and
    fit the fast model on all of it, and fuse the two on the sentences held out of fine-tuning
    (training/fusion.py)."""
    texts, graded, indicator = corpus.texts, corpus.graded_label_matrix(), corpus.label_matrix()
    tune_rows, held_out = fusion.held_out_split(corpus.primary_labels, seed=options.seed)
    settings = FinetuneSettings(epochs=options.finetune_epochs)
    progress(
        f"fine-tuning the encoder on {len(tune_rows)} sentences ({settings.epochs} epochs); "
        f"{len(held_out)} are held out to fuse it with the fast model"
    )
    tuned = finetune_encoder(
        [texts[row] for row in tune_rows],
        graded[tune_rows],
        settings=settings,
        seed=options.seed,
        threads=options.jobs,
        progress=progress,
    )
    best, results, fast = _select_and_fit(options, corpus, candidates, progress)
    embedder = SentenceEmbedder(tuned=tuned.weights)
    progress(f"embedding the {len(held_out)} held-out sentences with the tuned encoder")
    held_out_texts = [texts[row] for row in held_out]
    head = fusion.head_logits(tuned, embedder.fit(held_out_texts).transform(held_out_texts))
    fast_log_odds = fusion.log_odds(best.out_of_fold[held_out])
    stacker = fusion.Stacker.fit(fast_log_odds, head, indicator[held_out])
    fused = expit(stacker.log_odds(fast_log_odds, head))
    thresholds = tune_thresholds(indicator[held_out], fused)
    labels = [corpus.examples[row].labels for row in held_out]
    labels_everywhere = [example.labels for example in corpus.examples]
    fast_thresholds = tune_thresholds(indicator, best.out_of_fold)
    return FittedModel(
        model=fusion.fused_pipeline(fast, embedder, tuned, stacker),
        best=best,
        results=results,
        thresholds=thresholds,
        metrics={
            "held_out": evaluate(labels, fused, thresholds),
            # The fast model alone, as its own artifact would report it.
            "cross_validation": evaluate(labels_everywhere, best.out_of_fold, fast_thresholds),
        },
        fine_tuned=describe_finetuning(settings, tuned.weights),
        fusion=fusion.describe(stacker, len(held_out)),
    )


def _select_and_fit(
    options: TrainOptions,
    corpus: Corpus,
    candidates: Sequence[ModelParams],
    progress: Progress,
    embeddings: PrecomputedEmbeddings | None = None,
) -> tuple[CandidateResult, list[CandidateResult], Pipeline]:
    """Choose among the candidates by cross-validation, then fit the best on all the data."""
    texts, graded = corpus.texts, corpus.graded_label_matrix()
    best, results = select_model(
        texts,
        graded,
        corpus.primary_labels,
        candidates=candidates,
        seed=options.seed,
        folds=options.folds,
        n_jobs=options.jobs,
        embeddings=embeddings,
        progress=progress,
    )
    progress(f"chose {best.params.describe()}; fitting it on all training data")
    model = build_pipeline(best.params, seed=options.seed)
    if embeddings is not None:
        model.set_params(**{f"features__{EMBEDDING_STEP}": embeddings})
    # Labels are fitted in parallel processes; the artifact keeps n_jobs=None, so predictions
    # stay single-threaded in the service. Not threads: liblinear draws from the C library's
    # one random generator, so threads sharing it made the same seed give different models.
    # max_nbytes=None hands each process its own writable copy of the features.
    with parallel_config(backend="loky", n_jobs=options.jobs, max_nbytes=None):
        model.fit(np.asarray(texts, dtype=object), graded)
    return best, results, model


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
