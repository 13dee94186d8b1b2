"""Serving benchmark: sitrep against a plain predict_proba endpoint, on 127.0.0.1 only.

    python bench/run.py [--seconds 10] [--json bench/results/latest.json]
    python bench/run.py --model-dir /tmp/acc_models --profile accurate   # another model

For 1 and 2 workers it starts each server, drives single-sentence requests with wrk at 1 and 16
connections, times 1,000-sentence requests one at a time, and reads each worker's resident
memory. The 1,000-sentence bodies are the whole corpus (training and test splits) shuffled and
cut in 15: each is first sent once ("first sight"), then they are sent in turn ("repeated"), as
a service meets the words of a feed again. Prints a Markdown table. wrk comes from Debian
(`apt-get install wrk`); the script installs it if missing. Both servers serve the newest model
of --model-dir (default: the bundled models); --profile refuses to measure a model of another
profile.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
CORPUS_FILES = (REPO / "data" / "train.jsonl", REPO / "data" / "test.jsonl")
BULK_SENTENCES = 1_000


@dataclass
class Row:
    server: str
    workers: int
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float


@dataclass
class BulkRow:
    server: str
    workers: int
    first_sight_ms: float  # median over the bodies, each sent for the first time
    median_ms: float  # median over the same bodies sent again and again
    sentences_per_second: float  # from median_ms
    rss_mb_per_worker: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(server: str, workers: int, port: int, model_dir: Path | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SITREP_LOG_LEVEL": "warning"}
    if model_dir is not None:
        env["SITREP_MODEL_DIR"] = str(model_dir.resolve())
    if server == "sitrep":
        command = [sys.executable, "-m", "service", "--port", str(port), "--workers", str(workers)]
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline:create_app",
            "--factory",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                time.sleep(1 if workers > 1 else 0.2)  # let every worker come up
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{server} did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wrk(port: int, connections: int, seconds: int) -> tuple[float, float, float]:
    """Single-sentence requests: requests per second, p50 and p99 in milliseconds.

    wrk leaves a request that outlasts its timeout out of the latency figures, so the timeout
    is the whole run: a slow request (an accurate model's, under load) still counts."""
    output = subprocess.run(
        [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={seconds + 20}s",
            "--latency",
            "-s",
            str(BENCH / "single.lua"),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses: \d+|Socket errors:.*timeout [1-9]", output):
        raise RuntimeError(f"wrk saw errors:\n{output}")
    if re.search(r"^\s+0 requests in", output, re.M):
        raise RuntimeError(f"no request finished within {seconds} s:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return rps, _percentile(output, "50"), _percentile(output, "99")


def _percentile(output: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def bulk_bodies(directory: Path) -> Path:
    """The corpus, shuffled and cut into 1,000-sentence request bodies, one a line."""
    sentences = [
        json.loads(line)["text"] for file in CORPUS_FILES for line in file.read_text().splitlines()
    ]
    random.Random(0).shuffle(sentences)
    bodies = directory / "bulk.jsonl"
    with bodies.open("w", encoding="utf-8") as out:
        for start in range(0, len(sentences) - BULK_SENTENCES + 1, BULK_SENTENCES):
            out.write(json.dumps({"sentences": sentences[start : start + BULK_SENTENCES]}) + "\n")
    return bodies


def bulk(port: int, bodies: Path, seconds: int) -> tuple[float, float]:
    """Median latency of 1,000-sentence requests sent one at a time: first each body once
    (words the server has not met), then the same bodies in turn for `seconds`.

    Timed in Python for both (wrk cannot tell a first pass from the rest) with the standard
    library's lean client, sending prepared bytes and reading each answer without parsing it."""
    payloads = bodies.read_bytes().splitlines()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def seconds_to_answer(payload: bytes) -> float:
        start = time.perf_counter()
        connection.request(
            "POST", "/v1/classify", body=payload, headers={"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"a 1,000-sentence request got {answer.status}")
        return time.perf_counter() - start

    try:
        first = [seconds_to_answer(payload) for payload in payloads]
        again = []
        deadline = time.monotonic() + seconds
        for payload in itertools.cycle(payloads):
            again.append(seconds_to_answer(payload))
            if time.monotonic() > deadline:
                break
    finally:
        connection.close()
    return statistics.median(first) * 1000, statistics.median(again) * 1000


def worker_rss_mb(process: subprocess.Popen[bytes], workers: int) -> float:
    """Mean resident memory of the processes that serve requests (the workers).

    With several workers those are the supervisor's children started by multiprocessing's
    `spawn`; its resource tracker (about 13 MB, another child) serves nothing and is left out."""
    pids = [process.pid]
    if workers > 1:
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        pids = [int(pid) for pid in children]
    sizes = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        command = Path(f"/proc/{pid}/cmdline").read_text()
        if match and (workers == 1 or "spawn_main" in command):
            sizes.append(int(match.group(1)) / 1024)
    return statistics.mean(sizes) if sizes else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument(
        "--bulk-seconds", type=int, default=6, help="how long to repeat 1,000-sentence requests"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="model directory (default: bundled models)"
    )
    parser.add_argument(
        "--profile", choices=("fast", "accurate"), default=None, help="expected model profile"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--servers", nargs="+", choices=("baseline", "sitrep"), default=["baseline", "sitrep"]
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    bodies = bulk_bodies(Path(tempfile.mkdtemp(prefix="sitrep-bench-")))
    rows: list[Row] = []
    bulk_rows: list[BulkRow] = []
    profile = "unknown"
    for workers in args.workers:
        for server in args.servers:
            port = free_port()
            process = start(server, workers, port, args.model_dir)
            try:
                if server == "sitrep":
                    profile = httpx.get(f"http://127.0.0.1:{port}/v1/model").json()["profile"]
                    if args.profile is not None and profile != args.profile:
                        raise SystemExit(f"the model's profile is {profile}, not {args.profile}")
                wrk(port, 16, 2)  # warm up every worker
                for connections in (1, 16):
                    rps, p50, p99 = wrk(port, connections, args.seconds)
                    rows.append(Row(server, workers, connections, rps, p50, p99))
                    print(
                        f"{server} w={workers} c={connections}: {rps:.0f} req/s "
                        f"p50 {p50:.2f} ms p99 {p99:.2f} ms",
                        file=sys.stderr,
                    )
                first_ms, median_ms = bulk(port, bodies, args.bulk_seconds)
                rss = worker_rss_mb(process, workers)
                per_second = BULK_SENTENCES / (median_ms / 1000)
                bulk_rows.append(BulkRow(server, workers, first_ms, median_ms, per_second, rss))
                print(
                    f"{server} w={workers} 1,000 sentences: first sight {first_ms:.0f} ms, "
                    f"repeated {median_ms:.0f} ms median, RSS {rss:.0f} MB/worker",
                    file=sys.stderr,
                )
            finally:
                stop(process)
    print(render(rows, bulk_rows, profile))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": machine(),
                    "profile": profile,
                    "single": [asdict(row) for row in rows],
                    "bulk": [asdict(row) for row in bulk_rows],
                },
                indent=2,
            )
        )
    return 0


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def render(rows: list[Row], bulk_rows: list[BulkRow], profile: str) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; the {profile} profile.",
        "",
        "| server | workers | connections | req/s | p50 ms | p99 ms | vs baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    baseline = {
        (r.workers, r.connections): r.requests_per_second for r in rows if r.server == "baseline"
    }
    for row in rows:
        reference = baseline.get((row.workers, row.connections))
        ratio = f"{row.requests_per_second / reference:.2f}×" if reference else "–"
        lines.append(
            f"| {row.server} | {row.workers} | {row.connections} | {row.requests_per_second:.0f} "
            f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {ratio} |"
        )
    lines += [
        "",
        "| server | workers | 1,000 sentences: first sight, median ms | repeated, median ms "
        "| sentences/s (repeated) | RSS MB per worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {row.server} | {row.workers} | {row.first_sight_ms:.0f} | {row.median_ms:.0f} "
        f"| {row.sentences_per_second:.0f} | {row.rss_mb_per_worker:.0f} |"
        for row in bulk_rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
