"""Soak: a bounded mixed load on 127.0.0.1 with a model reload half-way through. No request
fails, the latency percentiles are reported, and resident memory grows by less than 10 %."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.reliability.conftest import ADMIN_KEY, TwoModels, record_figure
from tests.reliability.load import Load
from tests.reliability.memory import MiB, PeakRss, rss_bytes
from tests.service.server import ServerProcess

pytestmark = pytest.mark.slow
# Longer soaks by hand: RELIABILITY_SOAK_SECONDS=600 pytest tests/reliability/test_soak.py
SOAK_SECONDS = float(os.environ.get("RELIABILITY_SOAK_SECONDS", "60"))
WARM_UP_SECONDS = 5.0  # first requests fill caches and allocator arenas: not growth
CONNECTIONS = 16


def test_soak_with_a_reload_half_way(two_models: TwoModels, tmp_path: Path) -> None:
    with ServerProcess(
        log_path=tmp_path / "log",
        model_dir=two_models.path,
        model_version=two_models.old,
        admin_keys=ADMIN_KEY,
    ) as server:
        assert server.process is not None
        pid = server.process.pid
        with Load(server.url, connections=CONNECTIONS, max_seconds=SOAK_SECONDS * 3) as load:
            time.sleep(WARM_UP_SECONDS)
            warm = len(load.outcomes)
            start_rss = rss_bytes(pid)
            started = time.monotonic()
            with PeakRss(pid, every=0.05) as peak:
                time.sleep(SOAK_SECONDS / 2)
                reload = httpx.post(
                    f"{server.url}/v1/admin/reload",
                    json={"version": two_models.new},
                    headers={"X-API-Key": ADMIN_KEY},
                    timeout=60,
                )
                time.sleep(max(0.0, started + SOAK_SECONDS - time.monotonic()))
            end_rss = rss_bytes(pid)
        elapsed = time.monotonic() - started
        metrics = httpx.get(f"{server.url}/metrics").text
    assert reload.json() == {"previous": two_models.old, "current": two_models.new}
    failures = load.failures()
    assert failures == [], failures[:5]
    measured = load.outcomes[warm:]
    versions = [outcome.version for outcome in measured if outcome.version is not None]
    assert versions[-1] == two_models.new
    assert f'sitrep_model_info{{version="{two_models.new}"}} 1.0' in metrics
    growth = (end_rss - start_rss) / start_rss
    latencies = sorted(outcome.seconds for outcome in measured)
    p50, p99 = (latencies[int(share * len(latencies))] for share in (0.50, 0.99))
    record_figure(
        "soak",
        f"{elapsed:.0f} s on {CONNECTIONS} connections, mixed routes, 1 reload half-way: "
        f"{len(measured)} requests ({len(measured) / elapsed:.0f}/s), 0 errors; "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; RSS {start_rss / MiB:.0f} -> "
        f"{end_rss / MiB:.0f} MiB ({growth:+.1%}), peak {peak.bytes / MiB:.0f} MiB",
    )
    assert growth < 0.10, f"resident memory grew by {growth:.1%}"
