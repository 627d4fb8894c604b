"""Confidence intervals and the trend test used by the metrics: SciPy's and pymannkendall's own
implementations, seeded where they resample.

- ``bootstrap_ci``: ``scipy.stats.bootstrap``, percentile method (default 2,000 resamples, 95%),
  seeded so that a report is reproducible; used for groups below ``SMALL_GROUP`` threads.
- ``wilson_ci`` / ``median_ci``: the closed forms used for larger groups, where resampling buys
  nothing and costs memory: a proportion's Wilson score interval
  (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``) and the distribution-free
  interval of a median from binomial order statistics (``scipy.stats.quantile_test``).
- ``mann_kendall``: the classic Mann-Kendall trend test (``pymannkendall.original_test``: S with
  its tie-corrected variance, continuity-corrected z, two-sided p) and Sen's slope with its 95%
  interval (``scipy.stats.theilslopes``; pymannkendall gives no interval). Not the Hamed-Rao
  variance correction for autocorrelation: on 10-18 quarters its autocorrelation estimate swings
  the variance by 0.2x to 3x (the demo's share unresolved would read p = 0), see ``TREND_TEST``.
"""

from __future__ import annotations

import math

import numpy as np
import pymannkendall
from scipy import stats

SMALL_GROUP = 1000
RESAMPLES = 2000
SEED = 0
TREND_TEST = "Mann-Kendall (classic; pymannkendall.original_test)"


def wilson_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(round(successes)), n).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))


def median_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """NaN where no pair of order statistics reaches ``level`` (fewer than 6 values at 95%)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (math.nan, math.nan)
    ci = stats.quantile_test(x, p=0.5).confidence_interval(confidence_level=level)
    return (float(ci.low), float(ci.high))


def bootstrap_ci(
    values, statistic=np.mean, level: float = 0.95, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    # Sorted: the same values in another order (a store returns rows in no fixed order) must draw
    # the same resamples, or the seed would not make the interval reproducible.
    x = np.sort(np.asarray(values, dtype=float))
    if len(x) < 2:
        return (math.nan, math.nan)
    res = stats.bootstrap(
        (x,), statistic, n_resamples=resamples, confidence_level=level, method="percentile", rng=np.random.default_rng(seed)
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


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
    """Direction of a series (in time order) by the classic Mann-Kendall test: tau (S over the
    n(n-1)/2 pairs), two-sided p-value, Sen's slope per period and its interval."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n < 3 or np.all(y == y[0]):
        return {
            "periods": n,
            "tau": math.nan,
            "p_value": math.nan,
            "slope": 0.0 if n else math.nan,
            "slope_lo": math.nan,
            "slope_hi": math.nan,
            "trend": "too short" if n < 3 else "flat",
        }
    test = pymannkendall.original_test(y, alpha=alpha)
    _, _, lo, hi = stats.theilslopes(y, np.arange(n), alpha=1 - alpha)
    return {
        "periods": n,
        "tau": float(test.Tau),
        "p_value": float(test.p),
        "slope": float(test.slope),
        "slope_lo": float(lo),
        "slope_hi": float(hi),
        "trend": test.trend,
    }
