"""Faults: damaged model files, reloads while requests are in flight, a training killed mid-write.

The service refuses a damaged artifact with a clear log line: at start it stays up but never
becomes ready; at a reload the old model keeps serving and no request fails. A good reload under
load fails no request either, every answer names the version that really produced it, and the
switch shows in /v1/model and /metrics.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx2 as httpx
import joblib
import pytest

from service.artifact import MODEL_FILE, list_versions, load_artifact, sha256_file
from service.classifier import Classifier
from service.labels import LABELS
from tests.conftest import REPO, TRAIN_DATA, sample_corpus
from tests.reliability.conftest import (
    ADMIN_KEY,
    TwoModels,
    assert_no_leak,
    copy_artifact,
    log_entries,
    record_figure,
)
from tests.reliability.load import Load, Outcome
from tests.service.server import ServerProcess
from tests.service.test_artifact import edit_metadata

pytestmark = pytest.mark.slow
ADMIN = {"X-API-Key": ADMIN_KEY}


class CreatesFile:
    """A pickle that runs code when loaded: here, it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(byte ^ 0xFF for byte in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def trust_model_file(folder: Path) -> None:
    """Make the metadata vouch for whatever model.joblib now holds (a forged checksum)."""
    edit_metadata(folder, model_sha256=sha256_file(folder / MODEL_FILE))


def replace_model(folder: Path, value: object) -> None:
    joblib.dump(value, folder / MODEL_FILE)
    trust_model_file(folder)


def another_estimator() -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0]], [0, 1])


@dataclass(frozen=True)
class Damage:
    name: str
    apply: Callable[[Path, Path], None]  # (artifact folder, a scratch folder)
    says: str  # in the reason given by /readyz, the reload answer and the log


DAMAGES = (
    Damage("corrupted", lambda f, _: flip_bytes(f / MODEL_FILE), "checksum mismatch"),
    Damage("truncated", lambda f, _: truncate(f / MODEL_FILE), "checksum mismatch"),
    Damage(
        "code-in-a-pickle",
        lambda f, scratch: (f / MODEL_FILE).write_bytes(
            pickle.dumps(CreatesFile(scratch / "code-ran"))
        ),
        "checksum mismatch",
    ),
    Damage(
        "truncated-checksum-forged",
        lambda f, _: (truncate(f / MODEL_FILE), trust_model_file(f)),
        "could not be loaded",
    ),
    Damage(
        "another-estimator-checksum-forged",
        lambda f, _: replace_model(f, another_estimator()),
        "not a sitrep model",
    ),
    Damage(
        "not-an-estimator-checksum-forged",
        lambda f, _: replace_model(f, {"weights": [1, 2]}),
        "does not hold a probabilistic classifier",
    ),
    Damage(
        "metadata-not-json",
        lambda f, _: (f / "metadata.json").write_text('{"format": '),
        "not valid JSON",
    ),
    Damage(
        "metadata-checksum-edited",
        lambda f, _: edit_metadata(f, model_sha256="0" * 64),
        "checksum mismatch",
    ),
    Damage(
        "metadata-thresholds-dropped",
        lambda f, _: edit_metadata(f, thresholds={"other": 0.5}),
        "threshold between 0 and 1 for every label",
    ),
    Damage(
        "metadata-libraries-garbled",
        lambda f, _: edit_metadata(f, libraries="scikit-learn 1.9.1"),
        "not a sitrep model",
    ),
    Damage(
        "metadata-other-scikit-learn",
        lambda f, _: edit_metadata(f, libraries={"scikit-learn": "0.24.2"}),
        "written by scikit-learn 0.24.2",
    ),
)
AT_START = (  # one of each kind; all of them are tried at reload, which costs no new process
    "corrupted",
    "truncated-checksum-forged",
    "another-estimator-checksum-forged",
    "metadata-libraries-garbled",
)


def errors_logged(server: ServerProcess, message: str) -> list[str]:
    return [
        str(entry["message"])
        for entry in log_entries(server.log())
        if entry.get("level") == "error" and str(entry["message"]).startswith(message)
    ]


def test_damaged_model_at_start_is_refused_and_the_service_never_gets_ready(
    small_model_dir: Path, tmp_path: Path
) -> None:
    servers: dict[str, tuple[Damage, Path, ServerProcess]] = {}
    for damage in (damage for damage in DAMAGES if damage.name in AT_START):
        folder = tmp_path / damage.name
        shutil.copytree(small_model_dir, folder / "models")
        (version,) = list_versions(folder / "models")
        damage.apply(folder / "models" / version, folder)
        server = ServerProcess(
            log_path=folder / "log", model_dir=folder / "models", wait_for="/healthz"
        )
        servers[damage.name] = (damage, folder, server)
    with contextlib.ExitStack() as stack:
        for _, _, server in servers.values():
            stack.push(server.__exit__)  # stops it, if it started
        with ThreadPoolExecutor(len(servers)) as pool:  # side by side: starting is mostly waiting
            list(pool.map(ServerProcess.__enter__, [s for _, _, s in servers.values()]))
        for damage, folder, server in servers.values():
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 503, (damage.name, ready.text)
            assert damage.says in ready.json()["reason"], (damage.name, ready.text)
            assert_no_leak(ready.text)
            refused = httpx.post(f"{server.url}/v1/classify", json={"sentences": ["Talks."]})
            assert refused.status_code == 503
            assert httpx.get(f"{server.url}/healthz").status_code == 200
            (line,) = errors_logged(server, "no model loaded")
            assert damage.says in line, (damage.name, line)
            assert "Traceback" not in server.log()
            assert not (folder / "code-ran").exists(), "a pickle was loaded before its check"
    record_figure(
        "damaged model at start",
        f"{len(servers)} kinds of damage, each refused with a log line; never ready",
    )


def serve_old_model(models: TwoModels, tmp_path: Path) -> ServerProcess:
    """A server on the older of the two models, with the admin API on."""
    return ServerProcess(
        log_path=tmp_path / "log",
        model_dir=models.path,
        model_version=models.old,
        admin_keys=ADMIN_KEY,
    )


def scores_by_version(models: TwoModels) -> Callable[[str, str], list[float]]:
    """The scores each version gives a text, computed here, outside the server."""
    classifiers = {
        version: Classifier(load_artifact(models.path, version))
        for version in (models.old, models.new)
    }

    @cache
    def scores(version: str, text: str) -> list[float]:
        return [float(score) for score in classifiers[version].probabilities([text])[0]]

    return scores


def assert_answered_by_the_version_it_names(
    outcomes: list[Outcome], scores: Callable[[str, str], list[float]]
) -> int:
    """Every sentence's scores are those of the model version the response names."""
    checked = 0
    for outcome in outcomes:
        if not outcome.call.path.startswith("/v1/classify"):
            continue
        version = outcome.version
        assert version is not None
        for item in outcome.body.get("results") or outcome.body.get("sentences"):
            expected = scores(version, item["text"])
            got = [item["scores"][label] for label in LABELS]
            assert got == pytest.approx(expected, abs=1e-9), (version, item["text"])
            checked += 1
    return checked


def test_reloads_under_load_fail_no_request_and_answers_name_their_model(
    two_models_copy: TwoModels, tmp_path: Path
) -> None:
    models = two_models_copy
    damaged: dict[str, Damage] = {}
    for index, damage in enumerate(DAMAGES):
        # Stamped newer than both good models: a reload of "the newest" finds a damaged one.
        name = f"20990101-0000{index:02d}-{damage.name}"
        copy_artifact(models.path, models.old, name, f"2099-01-01T00:00:{index:02d}+00:00")
        damage.apply(models.path / name, tmp_path)
        damaged[name] = damage
    scores = scores_by_version(models)
    with (
        serve_old_model(models, tmp_path) as server,
        httpx.Client(base_url=server.url, headers=ADMIN, timeout=60) as admin,
    ):
        with Load(server.url, connections=8) as load:
            load.wait_for(40)
            for name, damage in damaged.items():
                refused = admin.post("/v1/admin/reload", json={"version": name})
                assert refused.status_code == 409, (name, refused.text)
                assert damage.says in refused.json()["detail"], (name, refused.text)
                assert_no_leak(refused.text)
                load.wait_for(5)
            newest = admin.post("/v1/admin/reload")  # no body: the newest, which is damaged
            assert newest.status_code == 409
            server.signal(signal.SIGHUP)  # the same, by signal
            wait_until(lambda: len(errors_logged(server, "reload refused")) == len(DAMAGES) + 2)
            load.wait_for(40)
            before_swap = time.monotonic()
            swapped = admin.post("/v1/admin/reload", json={"version": models.new})
            after_swap = time.monotonic()
            assert swapped.json() == {"previous": models.old, "current": models.new}
            load.wait_for(200)
        model = admin.get("/v1/model").json()
        metrics = admin.get("/metrics").text
        log = server.log()
    assert load.failures() == []
    old_era = [o for o in load.outcomes if o.finished < before_swap and o.version is not None]
    new_era = [o for o in load.outcomes if o.started > after_swap and o.version is not None]
    assert {outcome.version for outcome in old_era} == {models.old}
    assert {outcome.version for outcome in new_era} == {models.new}
    checked = assert_answered_by_the_version_it_names(load.outcomes, scores)
    assert model["version"] == models.new
    assert f'sitrep_model_info{{version="{models.new}"}} 1.0' in metrics
    assert f'sitrep_model_info{{version="{models.old}"}} 0.0' in metrics
    assert 'sitrep_model_reloads_total{outcome="ok"} 1.0' in metrics
    assert f'sitrep_model_reloads_total{{outcome="failed"}} {len(DAMAGES) + 2}.0' in metrics
    refusals = errors_logged(server, "reload refused")
    for name, damage in damaged.items():
        assert any(name in line and damage.says in line for line in refusals), name
    assert "Traceback" not in log
    assert not (tmp_path / "code-ran").exists(), "a pickle was loaded before its check"
    record_figure(
        "reloads under load",
        f"{len(DAMAGES) + 2} refused reloads ({len(DAMAGES)} kinds of damage, newest by API "
        f"and by SIGHUP) and 1 swap during {len(load.outcomes)} requests on 8 connections: "
        f"0 failed; {checked} sentence scores matched the version named",
    )


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# `python -m training`, killed (SIGKILL) half-way through writing model.joblib.
KILLED_WHILE_WRITING = """
import os, runpy, signal, sys
import joblib

write = joblib.dump

def write_half_then_die(value, filename, **options):
    write(value, filename, **options)
    os.truncate(filename, os.path.getsize(filename) // 2)
    os.kill(os.getpid(), signal.SIGKILL)

joblib.dump = write_half_then_die
sys.argv = ["training", "--data", sys.argv[1], "--out", sys.argv[2], "--folds", "3", "--jobs", "1"]
runpy.run_module("training", run_name="__main__")
"""


def test_training_killed_mid_write_leaves_nothing_the_service_would_load(
    two_models_copy: TwoModels, tmp_path: Path
) -> None:
    models = two_models_copy
    data = sample_corpus(TRAIN_DATA, tmp_path / "train.jsonl", per_label=20)
    latest = (models.path / "LATEST").read_text()
    # Train into the directory the server reads; the server starts while the training runs.
    with (
        subprocess.Popen(
            [sys.executable, "-c", KILLED_WHILE_WRITING, str(data), str(models.path)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ) as training,
        serve_old_model(models, tmp_path) as server,
        httpx.Client(base_url=server.url, headers=ADMIN) as admin,
    ):
        _, errors = training.communicate(timeout=300)
        assert training.returncode == -signal.SIGKILL, errors.decode()[-2000:]
        (staging,) = (entry for entry in models.path.iterdir() if entry.name.startswith(".tmp-"))
        assert (staging / MODEL_FILE).stat().st_size > 0  # the half-written file is there...
        assert sorted(list_versions(models.path)) == sorted([models.old, models.new])  # unseen
        assert (models.path / "LATEST").read_text() == latest
        newest = admin.post("/v1/admin/reload")
        assert newest.json() == {"previous": models.old, "current": models.new}
        named = admin.post("/v1/admin/reload", json={"version": staging.name})
        assert named.status_code == 409
        assert "invalid version name" in named.json()["detail"]
        assert admin.get("/readyz").json()["model_version"] == models.new
