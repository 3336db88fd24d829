"""The server process's own resources: glibc's allocator, torch's threads, and memory handed back when
idle. `embodia serve` sets them up once, before its worker threads start."""

from __future__ import annotations

import os
import threading
import time

# Blocks up to 32 MiB (a message within the default 16 MiB limit, a decoded image) come from the heap and
# are reused from one request to the next; freed heap memory is handed back when the server is idle
# (IdleTrimmer), not after each request.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
ARENA_MAX = 2  # glibc's default allows 8 arenas per core, one per thread that allocates


def tune_allocator() -> bool:
    """glibc's allocator (`mallopt`) for a server that receives multi-MB messages. Call once, before
    the worker threads start; False where glibc is absent.

    - Fixed thresholds. By default glibc moves its mmap threshold after each large free (up to 32 MiB),
      so which messages are mapped and which land in an arena depends on the history. A mapped block,
      or heap memory trimmed after each free, is fresh memory the next time: a 4 MB message then
      costs 1,025 page faults, taken while the event loop or a worker holds the interpreter lock that
      the model's thread needs between operators. Under a client sending large messages back to back a
      valid client's inference slowed 2-4x. With both thresholds above the message limit, the same
      heap memory serves request after request.
    - At most 2 arenas: each thread that allocates may otherwise get its own, each keeping its own
      high-water mark.
    - What this keeps resident after a burst is handed back by IdleTrimmer's `malloc_trim` once the
      server has been idle for IDLE_TRIM_S.
    """
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    return all(
        bool(mallopt(option, value))
        for option, value in (
            (m_mmap_threshold, MMAP_THRESHOLD),
            (m_trim_threshold, TRIM_THRESHOLD),
            (m_arena_max, ARENA_MAX),
        )
    )


# How long a Python thread may hold the interpreter lock while another waits for it (Python's default:
# 5 ms). See `tune_interpreter`.
SWITCH_INTERVAL_S = 5e-5


def tune_interpreter() -> float:
    """A short interpreter switch interval for the server process; returns the previous one.

    The model's thread releases the interpreter lock in every torch call and needs it back after each.
    While the event loop is busy (another client's handshakes, refusals, large frames) each of those
    hand-backs waits up to the switch interval. A chunk of the base beside a Python thread that never
    blocks, one model thread (`python benchmarks/inference_latency.py --threads 1 --beside-busy-thread
    --switch-interval S`): p50 153 ms at Python's 5 ms, 28 ms at 0.05 ms (alone: 15-17 ms). In the
    server, a valid client alone went from p50 / p99 21.8 / 29.5 ms to 19.7 / 25.2 ms (docs/results.md,
    section 8)."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return before


def model_threads() -> int:
    """Threads for the model's operators: the CPU cores this process may use, less one (at least 1).
    At batch 1 a small model gains little from a second thread, and the event loop, decoding and the
    kernel's networking need a core: on 2 cores, 2 model threads made a valid client's inference 2-4x
    slower while another client sent large messages, and no faster alone."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class IdleTrimmer:
    """Hands memory that requests freed back to the system once the server has been idle a while
    (glibc's `malloc_trim`): Python and torch free into the allocator's arenas, which otherwise keep
    a burst of large or varied requests resident for good. A no-op where glibc is absent."""

    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._last = 0.0
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        try:
            import ctypes

            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    def touch(self) -> None:
        if self._trim is None:
            return
        with self._lock:
            self._last, self._dirty = time.monotonic(), True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="embodia-trim", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.idle_s / 2)
            with self._lock:
                due = self._dirty and time.monotonic() - self._last >= self.idle_s
                if due:
                    self._dirty = False
            if due:
                self._trim(0)
