"""What exists before the first simulated day: the product catalogue, the ad campaigns'
flight plans, the support agents, and the shared calendar and random-stream helpers.

Everything here depends on the seed and the world's start only. Plans that reach into
the future (price updates, campaign flights) are drawn as sequences from their own random
stream, so generating them further ahead never changes the part already drawn: the
world at a later clock sees the same past.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum

import numpy as np

from ops_demo import names

DAY = 86_400  # seconds
HOUR = 3_600
EPOCH = date(1970, 1, 1)


class Stream(IntEnum):
    """Independent random streams: adding draws to one never shifts another."""

    FX = 1
    ADS = 2
    ACQUISITION = 3
    REPEAT = 4
    ORDERS = 5
    TICKETS = 6
    PRODUCTS = 101
    PRICE_UPDATES = 102
    CAMPAIGNS = 103
    AGENTS = 104
    SHEETS = 105
    SHEET_REVISION = 106
    FX_START = 107


def rng(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """The generator of one stream for one key (usually a day number)."""
    return np.random.default_rng([seed, int(stream), *keys])


def epoch_seconds(day: date) -> int:
    return (day - EPOCH).days * DAY


def ascii_slug(text: str) -> str:
    """Lower-case ASCII without spaces, for e-mail local parts ("Müller" -> "muller")."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


@dataclass(frozen=True)
class Calendar:
    """Day numbers count from the world's start (day 0)."""

    start: date
    days: int  # number of simulated days (the horizon)

    @property
    def start_ts(self) -> int:
        return epoch_seconds(self.start)

    def day_ts(self, day: int) -> int:
        return self.start_ts + day * DAY

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def weekday(self, day: int) -> int:
        return self.date_of(day).weekday()

    def is_weekend(self, day: int) -> bool:
        return self.weekday(day) >= 5

    def growth(self, day: int) -> float:
        """The business doubles every two years from its level at the start."""
        return 0.65 * 2.0 ** (min(day, 3650) / 730)

    def season(self, day: int) -> float:
        """Retail year: Black Friday to Christmas peak, a summer dip."""
        doy = self.date_of(day).timetuple().tm_yday
        peak = 0.35 * np.exp(-(((doy - 332) / 16) ** 2)) + 0.2 * np.exp(-(((doy - 352) / 9) ** 2))
        dip = 0.1 * np.exp(-(((doy - 205) / 30) ** 2))
        return float(1.0 + peak - dip)


# --- ad channels --------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    name: str
    prefix: str  # campaign id prefix
    label: str
    currency: str  # the ad account's currency
    utm_source: str
    utm_medium: str
    slots: int  # campaigns running side by side (slot 0 is always on)
    daily_spend_usd: float  # at growth 1 and scale 1
    cac_usd: float  # spend per new customer
    cpm_usd: float
    ctr: float
    claim: float  # platforms over-claim conversions by this factor
    weekend_spend: float
    segment_mix: tuple[float, float, float]  # consumer, smb, enterprise
    churn: float  # churn hazard multiplier of the customers it brings
    order_rate: float  # repeat purchase multiplier of the customers it brings


CHANNELS: tuple[Channel, ...] = (
    Channel(
        "google_ads",
        "gads",
        "Google Ads",
        "USD",
        "google",
        "cpc",
        4,
        560.0,
        75.0,
        9.0,
        0.035,
        1.4,
        0.85,
        (0.70, 0.25, 0.05),
        1.0,
        1.0,
    ),
    Channel(
        "meta_ads",
        "meta",
        "Meta Ads",
        "USD",
        "facebook",
        "paid_social",
        3,
        330.0,
        58.0,
        7.0,
        0.012,
        1.8,
        1.05,
        (0.82, 0.15, 0.03),
        1.3,
        0.95,
    ),
    Channel(
        "tiktok_ads",
        "ttk",
        "TikTok Ads",
        "CNY",
        "tiktok",
        "paid_social",
        2,
        120.0,
        34.0,
        4.0,
        0.009,
        2.2,
        1.15,
        (0.93, 0.06, 0.01),
        2.4,
        0.75,
    ),
    Channel(
        "linkedin_ads",
        "lnkd",
        "LinkedIn Ads",
        "EUR",
        "linkedin",
        "paid_social",
        2,
        420.0,
        290.0,
        35.0,
        0.006,
        1.3,
        0.4,
        (0.15, 0.40, 0.45),
        0.55,
        1.15,
    ),
)
# acquisition sources beyond the paid channels (indices follow the channels)
ORGANIC = len(CHANNELS)
UNATTRIBUTED = ORGANIC + 1
SOURCE_SEGMENT_MIX = [c.segment_mix for c in CHANNELS] + [(0.75, 0.20, 0.05), (0.45, 0.35, 0.20)]
SOURCE_CHURN = np.array([c.churn for c in CHANNELS] + [0.85, 0.9])
SOURCE_ORDER_RATE = np.array([c.order_rate for c in CHANNELS] + [1.05, 1.0])

OBJECTIVES = ("acquisition", "retargeting", "brand")
OBJECTIVE_CAC = np.array([1.0, 0.75, 1.8])  # CAC multiplier by objective
CAMPAIGN_STATUSES = ("active", "paused", "ended")


@dataclass
class Campaigns:
    """Static attributes (one entry per campaign) and the status/budget change events."""

    campaign_id: np.ndarray
    name: np.ndarray
    channel: np.ndarray  # index into CHANNELS
    objective: np.ndarray  # index into OBJECTIVES
    start_day: np.ndarray  # day numbers, may be negative (before the world's start)
    end_day: np.ndarray  # last running day; -10**9 for always-on campaigns
    quality: np.ndarray  # CAC multiplier
    # events: the campaign row changes at ev_ts to (ev_status, ev_budget)
    ev_campaign: np.ndarray
    ev_ts: np.ndarray
    ev_status: np.ndarray  # index into CAMPAIGN_STATUSES
    ev_budget: np.ndarray  # cents of the account currency
    # per simulated day: 1 if running, and that day's budget (cents)
    running: np.ndarray  # (campaigns, days) bool
    budget: np.ndarray  # (campaigns, days) int64


NO_END = -(10**9)


def _slot_budget(
    cal: Calendar, channel: Channel, scale: float, day: int, noise: float, fx_guess: float
) -> int:
    """A campaign's daily budget in cents of the account currency, rounded like people do."""
    usd = channel.daily_spend_usd * scale * cal.growth(max(day, 0)) / channel.slots * noise
    amount = usd / fx_guess / 0.91  # planned budgets are under-spent by ~9 % (pacing)
    step = 10.0 if amount >= 100 else 1.0
    return int(max(step, round(amount / step) * step) * 100)


# rough account-currency rates for sizing budgets (the real daily rates come from fx)
BUDGET_FX = {"USD": 1.0, "EUR": 1.1, "CNY": 0.14}


ACTIVE, PAUSED, ENDED = 0, 1, 2
# a flight's plan: (day, new status or None, new budget or None), replayed in order
PlanEvent = tuple[int, int | None, int | None]


@dataclass(frozen=True)
class Flight:
    start: int
    end: int  # last running day, NO_END for always-on campaigns
    objective: int
    quality: float
    theme: int
    events: tuple[PlanEvent, ...]


def _always_on(cal: Calendar, channel: Channel, scale: float, r: np.random.Generator) -> Flight:
    """Slot 0: started long before the world, budget revised every few months, now and
    then paused for a few days."""
    fx = BUDGET_FX[channel.currency]
    # everything but the open-ended plan is drawn first: how far the plan reaches (the
    # horizon) must not change what comes after it in the stream
    quality, theme = float(r.lognormal(0, 0.15)), int(r.integers(1 << 30))
    start = -int(r.integers(60, 400))
    events: list[PlanEvent] = [
        (start, ACTIVE, _slot_budget(cal, channel, scale, start, r.lognormal(0, 0.15), fx))
    ]
    day = 0
    while day <= cal.days:
        day += int(r.integers(60, 120))
        events.append((day, None, _slot_budget(cal, channel, scale, day, r.lognormal(0, 0.15), fx)))
        if r.random() < 0.35:
            pause = day + int(r.integers(10, 40))
            events += [(pause, PAUSED, None), (pause + int(r.integers(2, 8)), ACTIVE, None)]
    return Flight(start, NO_END, 0, quality, theme, tuple(events))


def _flights(cal: Calendar, channel: Channel, scale: float, r: np.random.Generator) -> list[Flight]:
    """Other slots: flights of two to seven months, back to back with short gaps."""
    fx = BUDGET_FX[channel.currency]
    flights = []
    day = -int(r.integers(0, 150))
    while day <= cal.days:
        length = int(r.integers(75, 240))
        end = day + length - 1
        objective = int(r.choice(3, p=[0.6, 0.25, 0.15]))
        budget = _slot_budget(cal, channel, scale, day, r.lognormal(0, 0.25), fx)
        events: list[PlanEvent] = [(day, ACTIVE, budget)]
        if r.random() < 0.35:
            pause = day + int(r.integers(10, length - 15))
            resume = min(pause + int(r.integers(3, 13)), end)
            events += [(pause, PAUSED, None), (resume, ACTIVE, None)]
        if r.random() < 0.3:
            revised = max(100, int(budget * r.uniform(0.8, 1.25)) // 100 * 100)
            events.append((day + int(r.integers(7, length)), None, revised))
        events.append((end + 1, ENDED, None))
        flights.append(
            Flight(
                day,
                end,
                objective,
                float(r.lognormal(0, 0.3)),
                int(r.integers(1 << 30)),
                tuple(events),
            )
        )
        day = end + 1 + int(r.integers(0, 25))
    return flights


def _replay(events: tuple[PlanEvent, ...]) -> list[tuple[int, int, int]]:
    """Plan events -> the full (day, status, budget) state after each event."""
    status, budget, out = ACTIVE, 0, []
    for day, new_status, new_budget in sorted(events, key=lambda e: e[0]):
        status = status if new_status is None else new_status
        budget = budget if new_budget is None else new_budget
        out.append((day, status, budget))
    return out


def plan_campaigns(cal: Calendar, seed: int, scale: float) -> Campaigns:
    ids, titles, chans, objs, starts, ends, quals = [], [], [], [], [], [], []
    ev_c, ev_ts, ev_s, ev_b = [], [], [], []
    for ci, channel in enumerate(CHANNELS):
        flights = []
        for slot in range(channel.slots):
            r = rng(seed, Stream.CAMPAIGNS, ci, slot)
            if slot == 0:
                planned = [_always_on(cal, channel, scale, r)]
            else:
                planned = _flights(cal, channel, scale, r)
            flights += [(f.start, slot, f) for f in planned]
        # numbered by start day (ties by slot): a later clock only appends campaigns
        for number, (_, _, f) in enumerate(sorted(flights, key=lambda x: x[:2]), start=1):
            c = len(ids)
            ids.append(f"{channel.prefix}-{number:04d}")
            theme = names.CAMPAIGN_THEMES[f.theme % len(names.CAMPAIGN_THEMES)]
            month = cal.date_of(f.start).strftime("%Y-%m")
            titles.append(f"{channel.label} | {theme} | {OBJECTIVES[f.objective].title()} {month}")
            chans.append(ci)
            objs.append(f.objective)
            starts.append(f.start)
            ends.append(f.end)
            quals.append(f.quality)
            # changes take effect in the early morning (UTC), at a minute of its own per
            # campaign; k keeps same-day changes in plan order
            for k, (day, status, budget) in enumerate(_replay(f.events)):
                ev_c.append(c)
                ev_ts.append(cal.day_ts(day) + 300 + 60 * (number % 90) + k)
                ev_s.append(status)
                ev_b.append(budget)
    ev_c_a = np.array(ev_c, dtype=np.int64)
    ev_ts_a = np.array(ev_ts, dtype=np.int64)
    ev_s_a = np.array(ev_s, dtype=np.int8)
    ev_b_a = np.array(ev_b, dtype=np.int64)
    running, budget = _daily_state(cal, len(ids), ev_c_a, ev_ts_a, ev_s_a, ev_b_a)
    return Campaigns(
        campaign_id=np.array(ids, dtype=object),
        name=np.array(titles, dtype=object),
        channel=np.array(chans, dtype=np.int8),
        objective=np.array(objs, dtype=np.int8),
        start_day=np.array(starts, dtype=np.int64),
        end_day=np.array(ends, dtype=np.int64),
        quality=np.array(quals),
        ev_campaign=ev_c_a,
        ev_ts=ev_ts_a,
        ev_status=ev_s_a,
        ev_budget=ev_b_a,
        running=running,
        budget=budget,
    )


def _daily_state(
    cal: Calendar, n: int, ev_c: np.ndarray, ev_ts: np.ndarray, ev_s: np.ndarray, ev_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each simulated day takes the state of the last event at or before its morning."""
    running = np.zeros((n, cal.days), dtype=bool)
    budget = np.zeros((n, cal.days), dtype=np.int64)
    mornings = np.array([cal.day_ts(d) + 12 * HOUR for d in range(cal.days)], dtype=np.int64)
    for c in range(n):
        sel = np.flatnonzero(ev_c == c)
        idx = np.searchsorted(ev_ts[sel], mornings, side="right") - 1
        known = idx >= 0
        running[c, known] = ev_s[sel][idx[known]] == ACTIVE
        budget[c, known] = ev_b[sel][idx[known]]
    return running, budget


# --- products ------------------------------------------------------------------------------

N_PRODUCTS = 200


@dataclass
class Products:
    product_id: np.ndarray
    sku: np.ndarray
    name: np.ndarray
    category: np.ndarray
    popularity: np.ndarray  # probabilities summing to 1
    # price events (the first one per product is its creation): USD cents
    ev_product: np.ndarray
    ev_ts: np.ndarray
    ev_list_price: np.ndarray
    ev_unit_cost: np.ndarray


def _price_cents(usd: float) -> int:
    """Shop prices end in .99 (or .49 below 5 USD)."""
    if usd < 5:
        return max(99, int(usd) * 100 + 49)
    return round(usd) * 100 - 1


CATEGORY_PRICE_USD = {
    "Office": 18,
    "Electronics": 45,
    "Furniture": 140,
    "Home": 16,
    "Outdoor": 35,
    "Apparel": 25,
}
# big-ticket furniture sells less often
CATEGORY_POPULARITY = {
    "Office": 1.0,
    "Electronics": 1.0,
    "Furniture": 0.4,
    "Home": 1.0,
    "Outdoor": 0.8,
    "Apparel": 1.0,
}


def plan_products(cal: Calendar, seed: int) -> Products:
    r = rng(seed, Stream.PRODUCTS)
    combos = [
        (cat, adj, noun)
        for cat, (_, nouns) in names.PRODUCT_CATEGORIES.items()
        for noun in nouns
        for adj in names.PRODUCT_ADJECTIVES
    ]
    picked = sorted(r.choice(len(combos), size=N_PRODUCTS, replace=False))
    rank = r.permutation(N_PRODUCTS) + 1
    popularity = 1.0 / rank**0.8
    ids, skus, titles, cats = [], [], [], []
    ev_p, ev_ts, ev_lp, ev_uc = [], [], [], []
    for i, k in enumerate(picked):
        cat, adj, noun = combos[k]
        code = names.PRODUCT_CATEGORIES[cat][0]
        ids.append(f"P{i + 1:04d}")
        skus.append(f"SKU-{code}-{10_000 + int(r.integers(0, 90_000)):05d}")
        titles.append(f"{adj} {noun}")
        cats.append(cat)
        list_price = _price_cents(CATEGORY_PRICE_USD[cat] * float(r.lognormal(0, 0.45)))
        margin = float(r.uniform(0.35, 0.65))
        created = (
            cal.start_ts - int(r.integers(30, 600)) * DAY + int(r.integers(8 * HOUR, 18 * HOUR))
        )
        ev_p.append(i), ev_ts.append(created), ev_lp.append(list_price)
        ev_uc.append(round(list_price * margin))
        # a few price updates later on, each product from its own stream
        pr = rng(seed, Stream.PRICE_UPDATES, i)
        if pr.random() < 0.5:
            day = 0
            while True:
                day += int(pr.exponential(400)) + 1
                if day >= cal.days:
                    break
                list_price = _price_cents(list_price / 100 * pr.uniform(0.92, 1.12))
                ev_p.append(i), ev_ts.append(cal.day_ts(day) + int(pr.integers(60, HOUR)))
                ev_lp.append(list_price)
                ev_uc.append(round(ev_uc[-1] * pr.uniform(0.97, 1.06)))
    popularity *= np.array([CATEGORY_POPULARITY[c] for c in cats])
    return Products(
        product_id=np.array(ids, dtype=object),
        sku=np.array(skus, dtype=object),
        name=np.array(titles, dtype=object),
        category=np.array(cats, dtype=object),
        popularity=popularity / popularity.sum(),
        ev_product=np.array(ev_p, dtype=np.int64),
        ev_ts=np.array(ev_ts, dtype=np.int64),
        ev_list_price=np.array(ev_lp, dtype=np.int64),
        ev_unit_cost=np.array(ev_uc, dtype=np.int64),
    )


# --- support agents --------------------------------------------------------------------------

TEAMS = ("billing", "logistics", "product", "general")
TEAM_SIZES = (6, 7, 6, 6)
# which team handles a ticket category
CATEGORY_TEAM = {"billing": 0, "delivery": 1, "product": 2, "account": 3, "other": 3}
HOURLY_COST = {"USD": (28.0, 42.0), "EUR": (26.0, 38.0), "CNY": (110.0, 180.0)}


@dataclass
class Agents:
    agent_id: np.ndarray
    name: np.ndarray
    team: np.ndarray  # index into TEAMS
    hourly_cost: np.ndarray  # cents
    currency: np.ndarray
    left_ts: np.ndarray  # when the agent left; a huge value for current staff


STAYS = np.iinfo(np.int64).max


def plan_agents(cal: Calendar, seed: int) -> Agents:
    r = rng(seed, Stream.AGENTS)
    team = np.repeat(np.arange(len(TEAMS)), TEAM_SIZES)
    n = len(team)
    currency = r.choice(["USD", "EUR", "CNY"], size=n, p=[0.45, 0.4, 0.15]).astype(object)
    cost = np.array([round(r.uniform(*HOURLY_COST[c]) * 100) for c in currency])
    left = np.full(n, STAYS, dtype=np.int64)
    # two people leave (one in logistics, one in general) and are inactive afterwards
    for k, day in ((TEAMS.index("logistics"), 200), (TEAMS.index("general"), 420)):
        left[np.flatnonzero(team == k)[-1]] = cal.day_ts(day) + 17 * HOUR
    return Agents(
        agent_id=np.arange(101, 101 + n, dtype=np.int64),
        name=np.array(names.AGENT_NAMES[:n], dtype=object),
        team=team,
        hourly_cost=cost,
        currency=currency,
        left_ts=left,
    )
