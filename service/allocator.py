"""Keep the memory a big batch frees for the next batch, instead of faulting it in again.

glibc serves every allocation above 128 KiB with its own `mmap` and gives it back to the kernel
when it is freed. A 1,000-sentence batch makes dozens of arrays of a few MB each, so every such
request page-faults about 13 MB of fresh, zeroed pages: 3,200 faults and up to a quarter of the
batch's CPU time spent in the kernel. With the thresholds raised, freed blocks stay in the heap
and the next batch reuses them: on this machine 1,000 sentences took 38 ms of CPU instead of
45 ms, with no page faults. A process classifying batches in a loop peaks at the same resident
memory; a serving worker holds 10-25 MB more after big batches (bench/run.py).

The settings are glibc's own (`mallopt`); a `MALLOC_*_` environment variable that sets any of
them wins, so an operator can still tune or undo this. Elsewhere (musl, macOS) nothing happens.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

logger = logging.getLogger("sitrep.memory")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap (glibc's ceiling for the setting on 64-bit systems).
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free memory at the top of the heap is returned to the kernel only beyond this.
TRIM_THRESHOLD = 16 * 1024 * 1024
_OVERRIDES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether they were set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _OVERRIDES):
        return False
    libc = ctypes.CDLL(None)
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not done:
        logger.warning("could not raise the allocator's thresholds; big batches stay slower")
    return done
