"""The one place that knows scikit-learn at serving time: sentences in, label scores out.

`Classifier` takes a verified artifact and precomputes what does not change between calls: the
fitted vectorizers (as `FastTfidf`), one matrix of the five linear models' coefficients and the
Platt calibration of each label. A prediction is then one feature extraction, one weighted sum
per label and a sigmoid — the same arithmetic as `pipeline.predict_proba`, without its per-call
validation (tests hold the two equal to 1e-9).

An `accurate` model's features end with sentence embeddings (`SentenceEmbedder`): the TF-IDF part
stays on the fast path, and the embeddings add one dense product per batch, with their union
weight folded into the coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.special import expit

from service.artifact import ModelArtifact
from service.encoder import SentenceEmbedder
from service.features import FastTfidf, SparseRows
from service.labels import LABELS, decide_label_rows

EVIDENCE_TERMS = 5
FEW_TEXTS = 32  # up to this batch size, scores are summed without a sparse matrix


class Prediction(TypedDict):
    """What the service answers for one sentence (a plain dict: the answer is built from
    thousands of these, and a dict needs no conversion on the way to JSON)."""

    text: str
    label: str
    confidence: float
    labels: list[str]
    scores: dict[str, float]


@dataclass(frozen=True)
class Evidence:
    term: str
    kind: str
    weight: float


class Classifier:
    """Fast, exact predictions and explanations for one loaded artifact."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.version = artifact.version
        self.thresholds = artifact.thresholds
        pipeline = artifact.estimator
        self._features = pipeline.named_steps["features"]
        # None for feature steps FastTfidf cannot mirror: those use scikit-learn's transform.
        self._fast, self._embedder, embedding_weight = _split_features(self._features)
        one_vs_rest = pipeline.named_steps["classifier"]
        if len(one_vs_rest.estimators_) != len(LABELS):
            raise ValueError("the artifact does not have one classifier per label")
        coefficients, intercepts, slopes, offsets = [], [], [], []
        for calibrated in one_vs_rest.estimators_:
            coefficients.append(calibrated.linear_.coef_.ravel())
            intercepts.append(float(calibrated.linear_.intercept_[0]))
            slopes.append(calibrated.slope_)
            offsets.append(calibrated.offset_)
        self._coefficients = np.vstack(coefficients).T.copy()  # (features, labels)
        self._embedding_coefficients = np.zeros((len(LABELS), 0))
        if self._fast is not None and self._embedder is not None:
            # The embeddings are the union's last columns, scaled by their union weight.
            embedding_part = embedding_weight * self._coefficients[self._fast.width :]
            self._embedding_coefficients = np.ascontiguousarray(embedding_part.T)  # (labels, 384)
            self._coefficients = self._coefficients[: self._fast.width].copy()
        self._coefficients_by_label = np.ascontiguousarray(self._coefficients.T)
        self._intercepts = np.asarray(intercepts)
        self._slopes = np.asarray(slopes)
        self._offsets = np.asarray(offsets)
        self._feature_names: npt.NDArray[Any] | None = None
        if self._embedder is not None:
            self._embedder.transform(["Warm-up."])  # start the encoder now, not on a request

    def probabilities(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Calibrated probability of every label, one row per text, columns in `LABELS` order."""
        decision = self._decision(self._sparse(texts), len(texts))
        if self._embedder is not None:
            embeddings = self._embedder.transform(texts)
            # Not `embeddings @ coefficients`: BLAS rounds a row differently depending on how
            # many rows come with it, and a sentence's scores must not depend on its batch. Each
            # sum here runs over one contiguous row of 384 products, the same way every time.
            decision += np.sum(embeddings[:, None, :] * self._embedding_coefficients, axis=2)
        decision += self._intercepts
        return np.asarray(expit(self._slopes * decision + self._offsets), dtype=np.float64)

    def _decision(self, features: SparseRows, count: int) -> npt.NDArray[np.float64]:
        """Each text's weighted feature sum for each label: (texts, labels).

        Both ways below add a row's products in the same order (each part's features by column,
        from zero) and then add the parts, so a sentence gets the same bits in any batch."""
        decision = np.zeros((count, len(LABELS)))
        start = 0
        for end in features.part_ends:
            rows, columns = features.rows[start:end], features.columns[start:end]
            values = features.values[start:end]
            if count <= FEW_TEXTS:
                # A sparse matrix costs ~0.1 ms to build: most of a one-sentence prediction.
                products = self._coefficients_by_label[:, columns] * values
                for label, row in enumerate(products):
                    decision[:, label] += np.bincount(rows, weights=row, minlength=count)
            else:
                # Rows ascend within a part: the row pointers come from one search.
                pointers = np.searchsorted(rows, np.arange(count + 1))
                part = csr_matrix(
                    (values, columns, pointers), shape=(count, len(self._coefficients))
                )
                decision += part @ self._coefficients
            start = end
        return decision

    def _sparse(self, texts: list[str]) -> SparseRows:
        """The TF-IDF features of an accurate model; every feature of any other model."""
        if self._fast is not None:
            return self._fast.transform(texts)
        matrix = self._features.transform(texts).tocsr().tocoo()  # rows ascending
        return SparseRows(
            matrix.row.astype(np.int64),
            matrix.col.astype(np.int64),
            matrix.data.astype(float),
            (matrix.nnz,),
        )

    def predict(self, texts: list[str]) -> list[Prediction]:
        return self.predictions(texts, self.probabilities(texts))

    def predictions(self, texts: list[str], rows: npt.NDArray[np.float64]) -> list[Prediction]:
        """The answer for each text, given its row of `probabilities`."""
        answers: list[Prediction] = []
        for text, labels, row in zip(
            texts, decide_label_rows(rows, self.thresholds), rows.tolist(), strict=True
        ):
            scores = dict(zip(LABELS, row, strict=True))
            answers.append(
                {
                    "text": text,
                    "label": labels[0],
                    "confidence": scores[labels[0]],
                    "labels": labels,
                    "scores": scores,
                }
            )
        return answers

    def explain(
        self, text: str, labels: list[str], top: int = EVIDENCE_TERMS
    ) -> dict[str, list[Evidence]]:
        """For each label, the n-grams that raised its score most: the exact contribution of each
        feature to the calibrated log-odds (calibration slope × coefficient × feature value).
        An accurate model's sentence embeddings move its scores too, but have no terms to show."""
        features = self._sparse([text])
        names = self._names()
        evidence: dict[str, list[Evidence]] = {}
        for label in labels:
            column = LABELS.index(label)
            contributions = (
                self._slopes[column]
                * self._coefficients[features.columns, column]
                * features.values
            )
            order = np.argsort(-contributions, kind="stable")[:top]
            evidence[label] = [
                Evidence(
                    term=str(names[features.columns[index]]).split("__", 1)[1],
                    kind=str(names[features.columns[index]]).split("__", 1)[0],
                    weight=round(float(contributions[index]), 6),
                )
                for index in order
                if contributions[index] > 0
            ]
        return evidence

    def _names(self) -> npt.NDArray[Any]:
        # Built on first use only: explanations are rare and the names take memory.
        if self._feature_names is None:
            self._feature_names = self._features.get_feature_names_out()
        return self._feature_names


def _split_features(union: Any) -> tuple[FastTfidf | None, SentenceEmbedder | None, float]:
    """The union's TF-IDF vectorizers as one `FastTfidf`, and its trailing sentence embedder with
    its union weight; (None, None, 1.0) when FastTfidf cannot mirror the vectorizers."""
    named = list(union.transformer_list)
    name, last = named[-1]
    if not isinstance(last, SentenceEmbedder) or len(named) == 1:
        return FastTfidf.from_union(union), None, 1.0
    fast = FastTfidf.from_vectorizers(named[:-1], union.transformer_weights)
    if fast is None:
        return None, None, 1.0
    return fast, last, float((union.transformer_weights or {}).get(name, 1.0))
