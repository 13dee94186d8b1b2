"""The `sitrep` command: `serve`, `train`, `evaluate`."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.config import Settings
from service.model_store import STATE_FILE


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (SITREP_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (SITREP_PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (SITREP_WORKERS, default 1)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="model directory (SITREP_MODEL_DIR, default: the bundled models)",
    )
    parser.add_argument("--model-version", help="version to serve (default: the newest)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def run_serve(args: argparse.Namespace) -> int:
    overrides = {
        name: value
        for name, value in {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "model_dir": args.model_dir,
            "model_version": args.model_version,
            "log_level": args.log_level,
        }.items()
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        print(f"sitrep serve: invalid configuration:\n{error}", file=sys.stderr)
        return 2
    # uvicorn finishes requests in flight on SIGTERM/SIGINT, then re-raises the signal against
    # the handlers it found: these make that final step a clean exit with status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _exit_cleanly)
    if settings.workers == 1:
        import uvicorn

        from service.app import create_app

        uvicorn.run(create_app(settings), **_uvicorn_options(settings))
        return 0
    return _serve_workers(settings, overrides)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    from service.middleware import GuardedHttpProtocol

    return {
        "host": settings.host,
        "port": settings.port,
        "http": GuardedHttpProtocol,  # uvicorn's own has no limit on a request head's size or time
        "log_config": None,  # logging is configured by create_app: JSON lines
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }


def _serve_workers(settings: Settings, overrides: dict[str, Any]) -> int:
    """Several worker processes: each builds the app from the environment, shares a runtime
    directory (model version to serve, Prometheus files) and follows the same model version."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    runtime = Path(tempfile.mkdtemp(prefix="sitrep-"))
    os.environ.update({f"SITREP_{name.upper()}": str(value) for name, value in overrides.items()})
    os.environ["SITREP_RUNTIME_DIR"] = str(runtime)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(runtime / "prometheus"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

    class NewestOnSighup(Multiprocess):
        def handle_hup(self) -> None:
            # SIGHUP means "serve the newest model": forget the shared version, then let uvicorn
            # replace each worker; the new workers load the newest artifact.
            (runtime / STATE_FILE).unlink(missing_ok=True)
            super().handle_hup()

    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        workers=settings.workers,
        **_uvicorn_options(settings),
    )
    try:
        NewestOnSighup(config, sockets=[config.bind_socket()]).run()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from training.cli import add_evaluate_arguments, add_train_arguments

    parser = argparse.ArgumentParser(
        prog="sitrep", description="Label sentences of war and conflict reporting."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="serve the HTTP API"))
    add_train_arguments(commands.add_parser("train", help="train a model on labeled data"))
    add_evaluate_arguments(commands.add_parser("evaluate", help="score a model on labeled data"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    from training.cli import run_evaluate, run_train

    return run_train(args) if args.command == "train" else run_evaluate(args)


def serve_main() -> int:
    """`python -m service`: the same as `sitrep serve`."""
    parser = argparse.ArgumentParser(prog="python -m service", description="Serve the sitrep API.")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
