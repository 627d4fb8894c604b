"""Confidence intervals and trend tests used by the metrics (SciPy underneath; seeded).

- ``bootstrap_ci``: percentile bootstrap of a statistic (default 2,000 resamples, 95%), seeded so
  that a report is reproducible; used for groups below ``SMALL_GROUP`` threads.
- ``wilson_ci`` / ``median_ci``: the closed forms used for larger groups, where resampling buys
  nothing and costs memory (a proportion's Wilson score interval; the distribution-free interval
  of a median from binomial order statistics).
- ``mann_kendall``: Mann-Kendall trend test (Kendall's tau between period index and value, with
  SciPy's tie correction) and Sen's slope with its 95% interval (``scipy.stats.theilslopes``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

SMALL_GROUP = 1000
RESAMPLES = 2000
SEED = 0


def wilson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def median_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    lo = int(stats.binom.ppf((1 - level) / 2, n, 0.5))
    hi = int(stats.binom.isf((1 - level) / 2, n, 0.5))
    return (float(x[max(lo - 1, 0)]), float(x[min(hi, n - 1)]))


def bootstrap_ci(values, statistic=np.mean, level: float = 0.95, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), size=(resamples, len(x)))
    boot = statistic(x[draws], axis=1)
    return (float(np.quantile(boot, (1 - level) / 2)), float(np.quantile(boot, 0.5 + level / 2)))


def _interval(values, statistic, closed_form, name: str, level: float, small: int) -> tuple[float, float, str]:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (math.nan, math.nan, "")
    if len(x) < small:
        return (*bootstrap_ci(x, statistic, level), "bootstrap")
    return (*closed_form(x, level), name)


def proportion_ci(flags, level: float = 0.95, small: int = SMALL_GROUP) -> tuple[float, float, str]:
    """Interval of the share of true flags (NaN flags are unknown and left out), and its method."""
    return _interval(flags, np.mean, lambda x, lv: wilson_ci(x.sum(), len(x), lv), "wilson", level, small)


def median_interval(values, level: float = 0.95, small: int = SMALL_GROUP) -> tuple[float, float, str]:
    """Interval of the median (NaN values left out), and its method."""
    return _interval(values, np.median, median_ci, "order statistics", level, small)


def mann_kendall(values, alpha: float = 0.05) -> dict:
    """Direction of a series (in time order): tau, p-value, Sen's slope per period and its interval."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n < 3 or np.all(y == y[0]):
        return {"periods": n, "tau": math.nan, "p_value": math.nan, "slope": 0.0 if n else math.nan,
                "slope_lo": math.nan, "slope_hi": math.nan, "trend": "too short" if n < 3 else "flat"}
    t = np.arange(n)
    tau, p = stats.kendalltau(t, y)
    slope, _, lo, hi = stats.theilslopes(y, t, alpha=1 - alpha)
    if p < alpha:
        trend = "increasing" if tau > 0 else "decreasing"
    else:
        trend = "no trend"
    return {"periods": n, "tau": float(tau), "p_value": float(p), "slope": float(slope), "slope_lo": float(lo),
            "slope_hi": float(hi), "trend": trend}
