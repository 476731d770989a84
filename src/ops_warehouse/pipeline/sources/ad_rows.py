"""What the ad platform adapters (``google_ads``, ``meta_ads``) share when they turn a
platform's rows into the contract's: the campaign id every platform's numbers become (unique
across platforms), money and conversions rounded as the contract keeps them, counts served as
text, rows summed by campaign and day, and the quarantine reason of an account whose currency
the contract does not know (docs/sources.md, "Ad platforms")."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ops_warehouse.pipeline.contracts import CURRENCIES
from ops_warehouse.pipeline.sources import mapping

CENT = Decimal("0.01")
# A campaign id format: text around "{id}" or "{id:0Nd}" (the platform's number, zero-padded
# to N digits), e.g. "google_ads-{id}" or "gads-{id:04d}".
ID_FORMAT = re.compile(r"[^{}]*\{id(:0[1-9][0-9]?d)?\}[^{}]*")
# Rows handed to the loader at a time.
BATCH_ROWS = 10_000


def id_format(value: Any, path: str) -> str:
    """A mapping file's ``campaign_id_format``."""
    text = mapping.text(value, path)
    if not ID_FORMAT.fullmatch(text):
        raise mapping.MappingError(
            f"mapping file: {path} must be a text holding {{id}} or {{id:0Nd}} once (the "
            f"platform's campaign number, e.g. 'google_ads-{{id}}'), not {text!r}"
        )
    return text


def campaign_id(fmt: str, platform_id: Any) -> Any:
    """The contract's campaign id of a platform's campaign number; a number that is not one
    is passed on as served, and the row's reason names it (``number_reason``)."""
    number = _whole(platform_id)
    return fmt.format(id=number) if number is not None else platform_id


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def amount(value: Any, scale: int = 0) -> Decimal | None:
    """``value`` (a number or its text) divided by 10**scale, rounded half up to 2 decimals;
    None when it is no finite number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return (number.scaleb(-scale)).quantize(CENT, ROUND_HALF_UP)


def count(value: Any) -> int | None:
    """A whole count served as a number or its text (Google's int64 and Meta's counts are
    text); None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    return None


def currency_reason(platform: str, account: str, key: str, currency: Any) -> str | None:
    """Why an account's rows cannot be loaded: its currency is none of the contract's (the
    marts convert spend by fx rates of those currencies only). None when it is one."""
    if currency in CURRENCIES:
        return None
    return (
        f"{platform} account {account} (mapping file {key}) reports in {currency!r}, not a "
        f"currency of the contract ({', '.join(CURRENCIES)}): its spend cannot be converted "
        "to the reporting currency; add the currency and its fx rates to the contract, or "
        f"take the account out of {key}"
    )


class Summer:
    """Rows of one account summed by (campaign, day): platforms split a campaign-day by
    device, network or ad when asked to, and a contract row is one campaign-day. A value that
    is no number is kept as served, so that the row goes to quarantine naming it."""

    FIELDS = ("impressions", "clicks", "spend", "platform_conversions")

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, Any], dict[str, Any]] = {}

    def add(self, row: dict[str, Any], numbers: dict[str, Any]) -> None:
        key = (row["campaign_id"], row["date"])
        kept = self.rows.get(key)
        if kept is None:
            self.rows[key] = {**row, **numbers}
            return
        for name in self.FIELDS:
            old, new = kept[name], numbers[name]
            ok = isinstance(old, int | Decimal) and isinstance(new, int | Decimal)
            kept[name] = old + new if ok else (new if isinstance(old, int | Decimal) else old)
