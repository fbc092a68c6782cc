"""Per-operation counters and latency samples. Pure bookkeeping, no I/O.

Named counters in the style of psycopg_pool; ``get_stats()`` reads them and
``pop_stats()`` reads and resets them.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

REQUESTS_NUM = "requests_num"
REQUESTS_ERRORS = "requests_errors"
CONNECTIONS_LOST = "connections_lost"
ACQUIRE_TIMEOUTS = "acquire_timeouts"
RETRIES = "retries"
CACHE_HITS = "cache_hits"
CACHE_MISSES = "cache_misses"
LOCAL_HITS = "local_hits"
LOCAL_MISSES = "local_misses"
PERSONA_LOCAL_HITS = "persona_local_hits"
PERSONA_LOCAL_MISSES = "persona_local_misses"

SAMPLE_SIZE = 2048
#: Upper bounds (seconds) of the latency histogram buckets (Prometheus ``le``); the last
#: bucket, +Inf, is implied.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no samples."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class OperationStats:
    count: int = 0
    errors: int = 0
    total_seconds: float = 0.0
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_SIZE))
    # Per-bucket counts since the last reset (not cumulative); the samples keep only the
    # last SAMPLE_SIZE calls, a histogram for Prometheus must count every call.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    # Percentiles (p50, p95, p99) and the count they were computed at. Sorting the window
    # is the costly part of a summary: it is redone once 1/64 of the window (32 calls at
    # the full 2,048) is new, so a dashboard polling get_stats() does not sort per poll.
    # Counts, errors and the mean are always exact.
    _pct: tuple[int, tuple[float | None, ...]] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, float | int | None]:
        if self._pct is None or self.count - self._pct[0] >= max(1, len(self.samples) // 64):
            ordered = sorted(self.samples)
            self._pct = (self.count, tuple(_ms(percentile(ordered, q)) for q in (50, 95, 99)))
        p50, p95, p99 = self._pct[1]
        return {
            "count": self.count,
            "errors": self.errors,
            "mean_ms": (self.total_seconds / self.count * 1000) if self.count else None,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000


class Stats:
    """Counters, per-operation latency and acquire latency of one instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, int] = {}
        self.operations: dict[str, OperationStats] = {}
        self.acquire_samples: deque[float] = deque(maxlen=SAMPLE_SIZE)

    def incr(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def record(self, operation: str, seconds: float, *, error: bool = False) -> None:
        op = self.operations.get(operation)
        if op is None:
            op = self.operations[operation] = OperationStats()
        op.count += 1
        op.total_seconds += seconds
        op.samples.append(seconds)
        op.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if error:
            op.errors += 1

    def record_acquire(self, seconds: float) -> None:
        self.acquire_samples.append(seconds)

    def get_stats(self) -> dict[str, object]:
        """A copy of every counter, each operation's summary and acquire percentiles."""
        with self._lock:
            return self._snapshot()

    def pop_stats(self) -> dict[str, object]:
        """Like get_stats(), then reset everything to zero."""
        with self._lock:
            result = self._snapshot()
            self.counters = {}
            self.operations = {}
            self.acquire_samples = deque(maxlen=SAMPLE_SIZE)
            return result

    def histograms(self) -> dict[str, dict[str, object]]:
        """Per operation: ``buckets`` (cumulative counts for LATENCY_BUCKETS and +Inf),
        ``sum`` (seconds) and ``count``, since the last pop_stats()."""
        with self._lock:
            out: dict[str, dict[str, object]] = {}
            for name, op in sorted(self.operations.items()):
                cumulative, running = [], 0
                for n in op.buckets:
                    running += n
                    cumulative.append(running)
                out[name] = {"buckets": cumulative, "sum": op.total_seconds, "count": op.count}
            return out

    def _snapshot(self) -> dict[str, object]:
        acquire = sorted(self.acquire_samples)
        return {
            **self.counters,
            "acquire_p50_ms": _ms(percentile(acquire, 50)),
            "acquire_p99_ms": _ms(percentile(acquire, 99)),
            "operations": {k: v.summary() for k, v in sorted(self.operations.items())},
        }
