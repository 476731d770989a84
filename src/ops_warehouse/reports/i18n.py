"""The reports' words, in every report language: ``messages.json`` holds the catalogue."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ops_warehouse.reports.periods import ReportError
from ops_warehouse.settings import REPORT_LANGUAGES

CATALOGUE = Path(__file__).with_name("messages.json")
# Babel locale of each report language (en: US conventions for numbers and dates)
LOCALES = {"en": "en_US", "zh-CN": "zh_Hans_CN"}


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, dict[str, Any]]:
    return json.loads(CATALOGUE.read_text(encoding="utf-8"))


class Messages:
    """Look-ups in one language: ``m("anomaly_up", kpi=…)``, ``m.kpi("csat")``."""

    def __init__(self, language: str) -> None:
        if language not in REPORT_LANGUAGES:
            raise ReportError(
                f"report language {language!r} is not one of {REPORT_LANGUAGES} "
                "(OPS_REPORT_LANGUAGE / --language)"
            )
        self.language = language
        self.locale = LOCALES[language]
        self._messages = _catalogue()[language]

    def __call__(self, key: str, **values: Any) -> str:
        try:
            text = self._messages[key]
        except KeyError:
            raise KeyError(f"no message {key!r} in {CATALOGUE.name} for {self.language}") from None
        return text.format(**values) if values else text

    def kpi(self, kpi: str) -> str:
        """A KPI's label; a KPI the catalogue does not know yet keeps its column name."""
        return self._messages["kpi"].get(kpi, kpi)

    def channel(self, channel: str) -> str:
        return self._messages["channel"].get(channel, channel)
