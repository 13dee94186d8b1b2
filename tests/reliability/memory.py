"""Resident memory of the server process, read from /proc, once or sampled in the background."""

from __future__ import annotations

import threading
from types import TracebackType

MiB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


class PeakRss:
    """`with PeakRss(pid) as peak:` samples the process's RSS every few milliseconds; `peak.bytes`
    is the highest seen, so a short spike between two checks is not missed."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        self.pid = pid
        self.every = every
        self.bytes = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.bytes = max(self.bytes, rss_bytes(self.pid))
            except (OSError, LookupError):
                return  # the process is gone

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
