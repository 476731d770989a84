"""The outcome of one table-level check, whatever ran it (a GX expectation or a check of ours).

One ``CheckResult`` becomes one row of ``audit.dq_results`` (docs/quality.md): the audit module
adds ``run_id`` and ``checked_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["block", "warn"]


@dataclass(frozen=True)
class CheckResult:
    suite: str  # "<entity>.<layer>", e.g. "orders.raw", "kpi_daily.marts"
    check: str  # the expectation type, e.g. "expect_column_values_to_be_unique"
    column: str | None  # the column checked; None for table-level checks
    severity: Severity  # "block": the run must not publish; "warn": recorded and alerted
    success: bool
    unexpected_count: int | None = None  # rows breaking the check, where that is countable
    observed_value: str | None = None  # what was seen (a max, a row count, a column list …)

    @property
    def is_blocking_failure(self) -> bool:
        return self.severity == "block" and not self.success

    def describe(self) -> str:
        """One line for logs and alerts: ``orders.raw expect_… (order_id): 3 unexpected``."""
        where = f" ({self.column})" if self.column else ""
        outcome = "passed" if self.success else "FAILED"
        detail = []
        if self.unexpected_count:
            detail.append(f"{self.unexpected_count} unexpected")
        if self.observed_value is not None:
            detail.append(f"observed {self.observed_value}")
        tail = f": {', '.join(detail)}" if detail else ""
        return f"[{self.severity}] {self.suite} {self.check}{where} {outcome}{tail}"
