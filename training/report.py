"""The human report written beside every artifact: report.md and two plots."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt

from service.labels import LABELS
from training.metrics import FloatMatrix, reliability_curve

CONFUSION_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability.png"
MIN_BIN_SCORES = 10


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only; a clear error when the extra is missing.

    matplotlib is the `train` extra, not a core dependency: serving never draws.
    """
    try:
        import matplotlib
    except ImportError as error:
        raise RuntimeError(
            "sitrep train draws its report with matplotlib, which is not installed: "
            "pip install 'sitrep[train]'"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def confusion_matrix_png(matrix: list[list[int]], title: str) -> bytes:
    """Primary-label confusion matrix, shaded by row share, annotated with counts."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6.4, 5.4), dpi=110)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(LABELS)), [label.replace("_", "\n") for label in LABELS])
    axes.set_yticks(range(len(LABELS)), LABELS)
    axes.set_xlabel("predicted primary label")
    axes.set_ylabel("gold primary label")
    axes.set_title(title)
    for row in range(len(LABELS)):
        for column in range(len(LABELS)):
            axes.text(
                column,
                row,
                str(int(counts[row, column])),
                ha="center",
                va="center",
                color="white" if shares[row, column] > 0.5 else "black",
            )
    figure.colorbar(image, ax=axes, label="share of gold row")
    figure.tight_layout()
    return _png(figure)


def reliability_png(
    indicator: npt.NDArray[np.int_], probabilities: FloatMatrix, ece: float, title: str
) -> bytes:
    """Reliability diagram of every per-label score, with each label's curve beside the pool."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.0, 5.4), dpi=110)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for column, label in enumerate(LABELS):
        curve = [  # bins with a handful of scores only add noise to the picture
            point
            for point in reliability_curve(probabilities[:, column], indicator[:, column])
            if point[2] >= MIN_BIN_SCORES
        ]
        axes.plot(
            [point[0] for point in curve],
            [point[1] for point in curve],
            marker=".",
            alpha=0.6,
            label=label,
        )
    pooled = reliability_curve(probabilities.ravel(), indicator.ravel())
    axes.plot(
        [point[0] for point in pooled],
        [point[1] for point in pooled],
        marker="o",
        color="black",
        linewidth=2,
        label=f"all labels (ECE {ece:.3f})",
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("predicted probability")
    axes.set_ylabel("observed frequency")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return _png(figure)


def render_markdown(metadata: dict[str, Any]) -> str:
    """report.md: what was trained on what, how candidates compared, and how it scored."""
    data = metadata["data"]
    lines = [
        f"# sitrep model {metadata['version']}",
        "",
        f"- created: {metadata['created']} (training took {metadata['training_seconds']:.0f} s)",
        f"- profile: {metadata['profile']}, seed {metadata['seed']}",
        f"- training data: `{data['train']['path']}`, {data['train']['examples']} sentences, "
        f"SHA-256 `{data['train']['sha256'][:16]}…`",
    ]
    if "test" in data:
        lines.append(
            f"- test data: `{data['test']['path']}`, {data['test']['examples']} sentences, "
            f"SHA-256 `{data['test']['sha256'][:16]}…` (never used for fitting, selection or "
            "thresholds)"
        )
    lines.append(
        "- libraries: "
        + ", ".join(f"{name} {version}" for name, version in metadata["libraries"].items())
    )
    encoder = metadata.get("encoder")
    tuned = encoder.get("fine_tuned") if encoder else None
    fusion = metadata.get("fusion")
    if encoder:
        how = "as shipped"
        if tuned:
            # A tuned encoder is always fused with the fast model on sentences held out of tuning.
            how = (
                f"fine-tuned on all but {metadata['fusion']['held_out_examples']} of the training "
                f"sentences for {tuned['epochs']} epoch{'' if tuned['epochs'] == 1 else 's'} "
                "(weights SHA-256 "
                f"`{tuned['weights_sha256'][:16]}…`)"
            )
        lines.append(
            f"- encoder: {encoder['name']} from {encoder['package']} {encoder['version']}, {how}"
        )
    if fusion:
        lines += [
            f"- fusion: the fast model's log-odds and the encoder's head, combined per label by "
            f"a logistic regression fitted on the {fusion['held_out_examples']} sentences held "
            "out of fine-tuning (training/fusion.py)",
            "",
            "| label | fast's weight | head's weight | offset |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {label} | {weights['fast_weight']:.3f} | {weights['head_weight']:.3f} | "
            f"{weights['offset']:.3f} |"
            for label, weights in fusion["stacker"].items()
        ]
    lines += [
        "",
        "## Model selection (cross-validation on the training data)",
        "",
    ]
    if fusion:
        lines += ["The candidates are the fast model's, fused with the encoder afterwards.", ""]
    lines += [
        "| candidate | primary macro-F1 | seconds | chosen |",
        "| --- | ---: | ---: | :---: |",
    ]
    for candidate in metadata["selection"]["candidates"]:
        lines.append(
            f"| {candidate['description']} | {candidate['macro_f1']:.3f} | "
            f"{candidate['seconds']:.1f} | {'✓' if candidate['chosen'] else ''} |"
        )
    lines += [
        "",
        "## Thresholds (tuned per label on "
        + ("the sentences held out of fine-tuning)" if fusion else "out-of-fold predictions)"),
        "",
        "| label | threshold |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {value:.2f} |" for label, value in metadata["thresholds"].items()]
    for name, title in (
        ("test", "Test split"),
        ("held_out", "Held out of fine-tuning (the fusion is fitted here)"),
        ("cross_validation", "Cross-validation (out of fold)" + (", fast model" if fusion else "")),
    ):
        if name in metadata["metrics"]:
            lines += ["", *_metrics_section(title, metadata["metrics"][name])]
    if "test" in metadata["metrics"]:
        lines += [
            "",
            f"![confusion matrix]({CONFUSION_PNG})",
            "",
            f"![reliability diagram]({RELIABILITY_PNG})",
        ]
    return "\n".join(lines) + "\n"


def _metrics_section(title: str, metrics: dict[str, Any]) -> list[str]:
    primary = metrics["primary"]
    multilabel = metrics["multilabel"]
    lines = [
        f"## {title}: {metrics['examples']} sentences",
        "",
        f"- primary-label macro-F1: **{primary['macro_f1']:.3f}** "
        f"(accuracy {primary['accuracy']:.3f}; lenient macro-F1 {metrics['lenient_macro_f1']:.3f})",
        f"- multi-label macro-F1: {multilabel['macro_f1']:.3f}",
        f"- ECE of per-label scores: {metrics['ece']['per_label_scores']:.3f}; "
        f"of the top score: {metrics['ece']['primary_confidence']:.3f}",
        "",
        "| label | precision | recall | F1 | support | multi-label F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in LABELS:
        scores = primary["per_label"][label]
        lines.append(
            f"| {label} | {scores['precision']:.3f} | {scores['recall']:.3f} | "
            f"{scores['f1']:.3f} | {scores['support']} | "
            f"{multilabel['per_label'][label]['f1']:.3f} |"
        )
    return lines


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # Fixed metadata keeps the bytes identical across runs with the same numbers.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    pyplot().close(figure)
    return buffer.getvalue()
