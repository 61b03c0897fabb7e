"""Resident memory of this process, for the memory-bound curves in TensorBoard.

Total resident memory can also count pages of Ray's shared-memory object store that the
process has touched (they are not the process's own), so the private part (RssAnon: heap,
tensors, trees) is reported beside it: that is the part a leak would grow.
"""
from __future__ import annotations


def _status_mb(field: str) -> float:
    """One `/proc/self/status` field (reported in kB) in MiB; 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


def rss_mb() -> float:
    """Resident set size in MiB."""
    return _status_mb("VmRSS")


def anon_rss_mb() -> float:
    """Private (anonymous) resident memory in MiB."""
    return _status_mb("RssAnon")
