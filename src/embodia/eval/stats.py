"""Success rates with Wilson score intervals, per task, per group and overall.

Why Wilson and not the normal approximation p ± z·sqrt(p(1-p)/n): with the few dozen episodes an
evaluation on a CPU affords, success rates sit near 0 or 1 where the normal interval collapses to
zero width (0/10 would read "0 % ± 0"). The Wilson interval stays inside [0, 1] and is honest there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # two-sided 95 %: the 0.975 quantile of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    With no trials (n == 0) nothing is known, so the interval is the whole of [0, 1].
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if z <= 0 or not math.isfinite(z):
        raise ValueError(f"z must be a positive finite number, got {z}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At p = 0 or 1 the bound is exactly 0 or 1 in exact arithmetic; pin it there, not at ±1e-17.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True)
class Rate:
    """Successes out of n, the rate and its Wilson interval (rate is None when n == 0)."""

    successes: int
    n: int
    rate: float | None
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, successes: int, n: int, z: float = Z95) -> Rate:
        lo, hi = wilson_interval(successes, n, z)
        return cls(successes, n, successes / n if n else None, lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "successes": self.successes,
            "n": self.n,
            "success_rate": self.rate,
            "ci95": [self.ci_low, self.ci_high],
        }

    def __str__(self) -> str:
        if self.rate is None:
            return "n/a (0 episodes)"
        return f"{self.rate:.1%} [{self.ci_low:.1%}, {self.ci_high:.1%}] ({self.successes}/{self.n})"


def summarise(
    episodes: Iterable[Any], key: Callable[[Any], str], success: Callable[[Any], bool] | None = None
) -> dict[str, Rate]:
    """Group episodes by `key(episode)` and count successes (`episode.success` unless given).

    Keys keep the order in which they first appear, so tables follow the suite's task order.
    """
    get = success or (lambda ep: bool(ep.success))
    counts: dict[str, list[int]] = {}
    for ep in episodes:
        c = counts.setdefault(key(ep), [0, 0])
        c[0] += int(get(ep))
        c[1] += 1
    return {k: Rate.of(s, n) for k, (s, n) in counts.items()}


def mean_rate(rates: Iterable[Rate]) -> float | None:
    """Unweighted mean of per-task success rates: the number Meta-World papers quote for MT10/MT50.

    It equals the pooled rate when every task ran the same number of episodes, and stays the
    benchmark's definition when some did not.
    """
    values = [r.rate for r in rates if r.rate is not None]
    return sum(values) / len(values) if values else None
