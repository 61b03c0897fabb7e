"""Resident memory of this process, for the memory-bound curves in TensorBoard.

Total resident memory also counts the pages of Ray's shared-memory object store that the
process has touched (they grow up to the store's cap and are not the process's own), so
the private part (RssAnon: heap, tensors, trees) is reported beside it: that is the part a
leak would grow.
"""
from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident set size in MiB (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def anon_rss_mb() -> float:
    """Private (anonymous) resident memory in MiB (0 where /proc is not there)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0
