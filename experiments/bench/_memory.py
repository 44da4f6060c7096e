"""Resident-memory sampling, framework-free (Linux `/proc`, glibc)."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


def rss_bytes() -> int | None:
    """Resident set size of this process now (Linux `/proc`), or None."""
    try:
        with open(_STATM) as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Makes freed heap memory leave the resident set, so a later RSS rise is
    the work's own allocation and not a reuse of cached pages.

    glibc keeps freed blocks smaller than its (adaptive) mmap threshold
    resident; a fixed 64 KiB threshold sends every large buffer to mmap, which
    returns it to the OS on free. It slows allocation, so call this only after
    all timing is done. Returns False where it cannot (not glibc).

    The objects alive after the first call's collection are frozen out of
    later ones (`gc.freeze`): a framework's heap is large, and collecting it
    again before every row cost a fifth of a second each; what a row frees
    since is still collected.
    """
    gc.collect()
    gc.freeze()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 1024)
    libc.mallopt(m_trim_threshold, 128 * 1024)
    libc.malloc_trim(0)
    return True


class RssSampler:
    """Peak resident memory above the level at entry, sampled by a thread.

    A lower bound of the true peak: a spike shorter than the sampling period
    can be missed, so time a call of at least a few milliseconds.

    Example:
      >>> with RssSampler() as s:
      ...     block = bytearray(64 * 1024 * 1024)
      ...     time.sleep(0.02)
      >>> s.peak_increase_bytes is None or s.peak_increase_bytes > 32 * 2**20
      True
    """

    def __init__(self, period_s: float = 2e-4):
        self.period_s = period_s
        self.peak_increase_bytes: int | None = None

    def _poll(self):
        while not self._stop.is_set():
            now = rss_bytes()
            self._peak = max(self._peak, now)
            time.sleep(self.period_s)

    def __enter__(self):
        self._base = rss_bytes()
        if self._base is None:
            return self
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._base is None:
            return
        self._peak = max(self._peak, rss_bytes())
        self._stop.set()
        self._thread.join()
        self.peak_increase_bytes = self._peak - self._base
