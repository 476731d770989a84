"""Numbers, money, shares, durations and dates as a reader of the report's locale writes them."""

from __future__ import annotations

import math
from datetime import date, datetime

from babel.dates import format_date, format_datetime, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent

from ops_warehouse.reports.i18n import Messages

# Unit of each KPI, as kpi_definitions.csv (the dbt seed) declares it; a test keeps the two
# in step. A KPI missing here is shown as a plain number.
KPI_UNITS = {
    "spend": "currency",
    "impressions": "count",
    "clicks": "count",
    "ctr": "share",
    "cpc": "currency_per_click",
    "cpm": "currency_per_1000_impressions",
    "signups": "count",
    "new_customers": "count",
    "blended_cac": "currency_per_customer",
    "orders": "count",
    "gross_revenue": "currency",
    "net_revenue": "currency",
    "gross_margin": "currency",
    "gross_margin_pct": "fraction",
    "aov": "currency_per_order",
    "active_customers": "count",
    "returning_customer_rate": "share",
    "tickets_created": "count",
    "tickets_solved": "count",
    "open_backlog": "count",
    "median_first_reply_minutes": "minutes",
    "median_full_resolution_minutes": "minutes",
    "sla_attainment": "share",
    "csat": "share",
    "support_cost": "currency",
    "cost_per_ticket": "currency_per_ticket",
    "tickets_per_100_active": "tickets_per_100_customers",
}
# KPIs in the order the scorecard shows them: money, customers, support
KPI_ORDER = (
    "net_revenue",
    "gross_revenue",
    "gross_margin",
    "gross_margin_pct",
    "orders",
    "aov",
    "new_customers",
    "active_customers",
    "returning_customer_rate",
    "signups",
    "spend",
    "impressions",
    "clicks",
    "ctr",
    "cpc",
    "cpm",
    "blended_cac",
    "tickets_created",
    "tickets_solved",
    "open_backlog",
    "median_first_reply_minutes",
    "median_full_resolution_minutes",
    "sla_attainment",
    "csat",
    "support_cost",
    "cost_per_ticket",
    "tickets_per_100_active",
)


def kpi_sort_key(kpi: str) -> tuple[int, str]:
    return (KPI_ORDER.index(kpi) if kpi in KPI_ORDER else len(KPI_ORDER), kpi)


class Formatter:
    """Formats for one language and reporting currency."""

    def __init__(self, messages: Messages, currency: str) -> None:
        self.m = messages
        self.locale = messages.locale
        self.currency = currency

    def _missing(self, value: float | None) -> bool:
        return value is None or (isinstance(value, float) and math.isnan(value))

    def money(self, value: float | None) -> str:
        if self._missing(value):
            return self.m("not_available")
        return format_currency(value, self.currency, locale=self.locale)

    def money_short(self, value: float | None) -> str:
        """Money without cents (axis labels, big totals in sentences)."""
        if self._missing(value):
            return self.m("not_available")
        return format_currency(
            round(value),
            self.currency,
            format="¤#,##0",
            locale=self.locale,
            currency_digits=False,
        )

    def count(self, value: float | None) -> str:
        if self._missing(value):
            return self.m("not_available")
        return format_decimal(round(value), locale=self.locale)

    def number(self, value: float | None, digits: int = 2) -> str:
        if self._missing(value):
            return self.m("not_available")
        return format_decimal(
            round(value, digits), format=f"#,##0.{'0' * digits}", locale=self.locale
        )

    def percent(self, value: float | None, digits: int = 1) -> str:
        if self._missing(value):
            return self.m("not_available")
        return format_percent(value, format=f"#,##0.{'0' * digits}%", locale=self.locale)

    def signed_percent(self, value: float | None) -> str:
        if self._missing(value):
            return self.m("not_available")
        text = self.percent(abs(value))
        return text if round(value, 3) == 0 else ("+" if value > 0 else "−") + text

    def ratio(self, value: float | None) -> str:
        """A multiple such as ROAS: 2.35×."""
        if self._missing(value):
            return self.m("not_available")
        return format_decimal(round(value, 2), format="#,##0.00", locale=self.locale) + "×"

    def duration(self, minutes: float | None) -> str:
        """Minutes as "2 h 15 min" (or "45 min", "2 d 3 h")."""
        if self._missing(minutes):
            return self.m("not_available")
        total = round(minutes)
        if total >= 24 * 60:  # a day or more: to the hour
            days, hours = divmod(round(minutes / 60), 24)
            return self.m("duration_dh", d=format_decimal(days, locale=self.locale), h=hours)
        hours, mins = divmod(total, 60)
        if hours:
            return self.m("duration_hm", h=hours, m=mins)
        return self.m("duration_m", m=mins)

    def kpi(self, kpi: str, value: float | None) -> str:
        """A KPI's value in its unit."""
        unit = KPI_UNITS.get(kpi, "number")
        if unit == "currency":  # totals: whole currency units read faster
            return self.money_short(value)
        if unit.startswith("currency_per"):
            return self.money(value)
        if unit in ("share", "fraction"):
            return self.percent(value)
        if unit == "minutes":
            return self.duration(value)
        if unit == "count":
            return self.count(value)
        return self.number(value)

    def day(self, value: date) -> str:
        return format_date(value, "medium", locale=self.locale)

    def day_short(self, value: date) -> str:
        return format_skeleton("MMMd", value, locale=self.locale)

    def month(self, value: date) -> str:
        return format_skeleton("yMMMM", value, locale=self.locale)

    def month_short(self, value: date) -> str:
        return format_skeleton("yMMM", value, locale=self.locale)

    def timestamp(self, value: datetime) -> str:
        return format_datetime(value, "medium", locale=self.locale)
