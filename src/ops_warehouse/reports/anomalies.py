"""Anomalies: a KPI whose value is more than N standard deviations from its trailing mean.

The trailing window is the 8 periods before the one reported (8 weeks for the weekly report;
the same weekday of the 8 weeks before for the daily digest, so that weekday patterns do not
read as anomalies). A KPI with fewer than 8 known values in the window, or with no value in
the period, is not assessed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

TRAILING = 8


@dataclass(frozen=True)
class Anomaly:
    kpi: str
    value: float
    mean: float
    stdev: float
    sigmas: float  # signed: (value - mean) / stdev; ±inf when the window never moved

    @property
    def direction(self) -> str:
        return "up" if self.value > self.mean else "down"

    @property
    def change_vs_mean(self) -> float | None:
        """(value − mean) / |mean|, None when the mean is 0."""
        return (self.value - self.mean) / abs(self.mean) if self.mean else None


def detect(
    kpi: str, value: float | None, trailing: Sequence[float | None], sigma: float
) -> Anomaly | None:
    """The anomaly of one KPI, or None when its value is within ``sigma`` standard deviations
    of the mean of ``trailing`` (the periods before, oldest first) or cannot be assessed."""
    if sigma <= 0:
        raise ValueError(f"the anomaly threshold must be positive standard deviations, not {sigma}")
    known = [float(v) for v in trailing[-TRAILING:] if v is not None and not math.isnan(v)]
    if value is None or math.isnan(value) or len(known) < TRAILING:
        return None
    mean = statistics.fmean(known)
    stdev = statistics.stdev(known)
    distance = value - mean
    if stdev == 0:
        if math.isclose(value, mean, rel_tol=1e-9, abs_tol=1e-12):
            return None
        return Anomaly(kpi, value, mean, stdev, math.copysign(math.inf, distance))
    if abs(distance) <= sigma * stdev:
        return None
    return Anomaly(kpi, value, mean, stdev, distance / stdev)


def detect_all(
    values: dict[str, float | None],
    history: dict[str, Sequence[float | None]],
    sigma: float,
) -> list[Anomaly]:
    """Anomalies of every KPI, the furthest from its mean first."""
    found = [
        a
        for kpi, value in values.items()
        if (a := detect(kpi, value, history.get(kpi, ()), sigma)) is not None
    ]
    return sorted(found, key=lambda a: (-abs(a.sigmas), a.kpi))
