"""Reading rendered reports back: table cells by row key and class, and numbers from text."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

from babel.numbers import get_currency_symbol, parse_decimal


class Cells(HTMLParser):
    """``rows[(attr, key)][class] = text`` for every <tr data-attr="key"> and its <td class>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self.images: list[str] = []
        self.ids: dict[str, str] = {}
        self._row: dict[str, str] | None = None
        self._cell: str | None = None
        self._id: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            keys = [(k[5:], v) for k, v in a.items() if k.startswith("data-")]
            if keys:
                key = keys[0] if len(keys) == 1 else (keys[0][0], "|".join(v for _, v in keys))
                self._row = self.rows.setdefault(key, {})
        elif tag == "td" and self._row is not None:
            self._cell = (a.get("class") or "").split(" ")[0] or None
            if self._cell:
                self._row[self._cell] = ""
        elif tag == "img":
            self.images.append(a.get("src", ""))
        if a.get("id"):
            self._id = a["id"]
            self.ids[self._id] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None and self._cell:
            self._row[self._cell] += data
        if self._id:
            self.ids[self._id] += data


def number(text: str, locale: str = "en_US", currency: str = "USD") -> float:
    """A formatted number back as a float: money, percentages (as fractions), ratios (×),
    durations ("2 h 15 min", "1 d 6 h") as minutes."""
    text = text.strip().replace("−", "-").replace("\u00a0", " ")
    duration = re.fullmatch(r"(?:(\d+) d ?)?(?:(\d+) h ?)?(?:(\d+) min)?", text)
    if duration and any(duration.groups()):
        d, h, m = (int(g or 0) for g in duration.groups())
        return d * 1440 + h * 60 + m
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    text = text.replace(get_currency_symbol(currency, locale), "").rstrip("×").strip()
    return float(parse_decimal(text, locale=locale)) * scale


def decimals(text: str) -> int:
    """How many decimals a formatted number shows (its rounding step)."""
    digits = re.sub(r"[^0-9.]", "", text.replace(",", ""))
    return len(digits.split(".")[1]) if "." in digits else 0


def close_to_shown(shown: str, value: float, *, minutes: bool = False) -> bool:
    """Whether ``shown`` is ``value`` rounded as displayed (half a unit of its last digit)."""
    parsed = number(shown)
    if minutes:  # to the minute, or to the hour from a day on
        return abs(parsed - value) <= (30 if " d" in shown else 0.5) + 1e-9
    step = Decimal(1).scaleb(-decimals(shown))
    if shown.strip().endswith("%"):
        step = step / 100
    return abs(parsed - value) <= float(step) / 2 + 1e-9
