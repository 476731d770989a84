"""The demo company, simulated one day at a time.

Each day draws from its own random streams (``genesis.rng(seed, stream, day)``) and only
reads state built by earlier days, so day *d* comes out the same whatever the clock of
the world being generated. Whatever is born on a day (a customer, an order, a ticket)
gets its whole future at birth: the order's status timeline and refunds, the ticket's
events and time entries. ``world.py`` later cuts these lifecycles at the clock.

Nothing born on day *d* carries a timestamp before day *d* 00:00 UTC; together with the
per-day streams this is what keeps history stable when the clock moves.

Money is handled in integer cents; timestamps in integer seconds since the epoch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum
from typing import ClassVar

import numpy as np

from ops_demo import names
from ops_demo.genesis import (
    CATEGORY_TEAM,
    CHANNELS,
    DAY,
    HOUR,
    OBJECTIVE_CAC,
    ORGANIC,
    SOURCE_CHURN,
    SOURCE_ORDER_RATE,
    SOURCE_SEGMENT_MIX,
    STAYS,
    TEAMS,
    UNATTRIBUTED,
    Agents,
    Calendar,
    Campaigns,
    Products,
    Stream,
    ascii_slug,
    plan_agents,
    plan_campaigns,
    plan_products,
    rng,
)
from ops_warehouse.pipeline.contracts import CURRENCIES, TICKET_STATUSES

NEVER = 2**62  # "this never happens" for a lifecycle timestamp
MINUTE = 60

# --- the business's constants ---------------------------------------------------------

SHIPPING = np.array([695, 595, 3900])  # cents, by currency
FREE_SHIPPING_FROM = np.array([10_000, 9_000, 70_000])

COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "CN", "JP", "CA", "AU")
COUNTRY_P = np.array([0.33, 0.10, 0.12, 0.08, 0.05, 0.03, 0.03, 0.08, 0.04, 0.08, 0.06])
# the shop sells in USD, EUR (its EU storefront, which also serves GB) and CNY
COUNTRY_CURRENCY = np.array([0, 1, 1, 1, 1, 1, 1, 2, 0, 0, 0])
COUNTRY_TAX = np.array([0.07, 0.20, 0.19, 0.20, 0.21, 0.21, 0.22, 0.13, 0.10, 0.13, 0.10])
COUNTRY_REGION = ("en", "en", "de", "fr", "nl", "es", "es", "zh", "ja", "en", "en")

SEGMENTS = ("consumer", "smb", "enterprise")
# repeat purchases per active day, and the daily hazard of going quiet, by segment
ORDER_RATE = np.array([0.0172, 0.0325, 0.045])
CHURN_HAZARD = np.array([1 / 200, 1 / 300, 1 / 420])
REACTIVATION_HAZARD = 1 / 320
FIRST_ORDER_P = np.array([0.82, 0.88, 0.9])
# weekday vs weekend propensity: consumers shop more at weekends, businesses far less
WEEKDAY_FACTOR = np.array([[0.94, 1.15], [1.24, 0.3], [1.24, 0.3]])

# hour-of-day weights (UTC) of consumers and of businesses
CONSUMER_HOURS = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1,
        1.5,
        2,
        2.3,
        2.5,
        2.6,
        2.8,
        2.7,
        2.6,
        2.6,
        2.8,
        3.2,
        3.8,
        4.2,
        4.4,
        3.8,
        2.8,
        1.8,
    ]
)
BUSINESS_HOURS = np.array(
    [
        0.2,
        0.1,
        0.1,
        0.1,
        0.1,
        0.2,
        0.6,
        2,
        4,
        5,
        5,
        4.5,
        3.5,
        4.5,
        5,
        4.8,
        4,
        3,
        1.5,
        0.8,
        0.5,
        0.4,
        0.3,
        0.2,
    ]
)

# new customers per day at growth 1 and scale 1 besides paid ads
ORGANIC_PER_DAY = 8.5
UNATTRIBUTED_PER_DAY = 4.2

TICKET_CATEGORIES = ("billing", "delivery", "product", "account", "other")
TICKET_CHANNELS = ("email", "chat", "web", "phone")
PRIORITIES = ("low", "normal", "high", "urgent")
SLA_MINUTES = np.array([1440, 480, 240, 60])
FIRST_REPLY_MEDIAN = np.array([520.0, 190.0, 95.0, 25.0])  # minutes, at normal load
SOLVE_MEAN_HOURS = np.array([48.0, 24.0, 8.0, 3.0])
EVENT_TYPES = ("created", "comment", "status_change", "satisfaction_rated")
ROLES = ("agent", "end_user", "system")
SCORES = ("good", "bad")
SPONTANEOUS_TICKETS_PER_DAY = 14.0  # customers writing in without an order behind it
VISITOR_TICKETS_PER_DAY = 6.0  # people who are not customers
SUPPORT_CAPACITY_PER_DAY = 56.0  # tickets a day the team handles at normal speed (scale 1)
POOR_SUPPORT_EFFECT = 0.4  # repeat purchase rate multiplier (hazard divided by it)

ORDER_TIMELINE = ("paid_ts", "shipped_ts", "completed_ts", "cancelled_ts", "refunded_ts")
REFUND_REASONS_FULL = ("returned", "not delivered", "wrong item", None)
REFUND_REASONS_PARTIAL = ("damaged item", "late delivery", "price adjustment", "missing item", None)


class Slot(IntEnum):
    """The events a ticket can have, in the order they happen."""

    CREATED = 0
    FIRST_REPLY = 1
    OPENED = 2
    ASKED = 3  # the agent asks the customer something: pending
    NOTE = 4  # an internal note
    ANSWER = 5
    ANSWER_REOPENS = 6
    FOLLOW_UP = 7
    SOLVED = 8
    COMPLAINT = 9  # "still broken"
    REOPENED = 10
    SECOND_ANSWER = 11
    SOLVED_AGAIN = 12
    RATED = 13
    CLOSED = 14  # four days after the last solve


# what each slot is: (event_type, author_role, is_public, new_status)
EVENT_SLOTS: dict[Slot, tuple[str, str, bool | None, str | None]] = {
    Slot.CREATED: ("created", "end_user", None, None),
    Slot.FIRST_REPLY: ("comment", "agent", True, None),
    Slot.OPENED: ("status_change", "agent", None, "open"),
    Slot.ASKED: ("status_change", "agent", None, "pending"),
    Slot.NOTE: ("comment", "agent", False, None),
    Slot.ANSWER: ("comment", "end_user", True, None),
    Slot.ANSWER_REOPENS: ("status_change", "system", None, "open"),
    Slot.FOLLOW_UP: ("comment", "agent", True, None),
    Slot.SOLVED: ("status_change", "agent", None, "solved"),
    Slot.COMPLAINT: ("comment", "end_user", True, None),
    Slot.REOPENED: ("status_change", "system", None, "open"),
    Slot.SECOND_ANSWER: ("comment", "agent", True, None),
    Slot.SOLVED_AGAIN: ("status_change", "agent", None, "solved"),
    Slot.RATED: ("satisfaction_rated", "end_user", None, None),
    Slot.CLOSED: ("status_change", "system", None, "closed"),
}
# when agents work on a ticket (and may log time)
AGENT_WORK_SLOTS = [
    Slot.FIRST_REPLY,
    Slot.NOTE,
    Slot.FOLLOW_UP,
    Slot.SOLVED,
    Slot.SECOND_ANSWER,
    Slot.SOLVED_AGAIN,
]


def _seconds(r: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    """A uniform delay in whole seconds for each of n rows."""
    return r.uniform(low, high, size=n).astype(np.int64)


def seconds_of_day(r: np.random.Generator, business: np.ndarray) -> np.ndarray:
    """A time of day (seconds) for each row, following consumer or business hours."""
    hours = np.where(
        business,
        r.choice(24, size=len(business), p=BUSINESS_HOURS / BUSINESS_HOURS.sum()),
        r.choice(24, size=len(business), p=CONSUMER_HOURS / CONSUMER_HOURS.sum()),
    )
    return hours * HOUR + r.integers(0, HOUR, size=len(business))


class Chunks:
    """Columns collected day by day, concatenated once at the end."""

    def __init__(self, **dtypes: object) -> None:
        self.dtypes = dtypes
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in dtypes}

    def add(self, **cols: object) -> None:
        assert cols.keys() == self.dtypes.keys(), sorted(set(cols) ^ set(self.dtypes))
        for k, v in cols.items():
            self.parts[k].append(np.asarray(v, dtype=self.dtypes[k]))

    def frame(self) -> dict[str, np.ndarray]:
        return {
            k: np.concatenate(v) if v else np.empty(0, dtype=self.dtypes[k])
            for k, v in self.parts.items()
        }


class CustomerState:
    """Per-customer arrays, grown as customers are born; index = customer number - 1."""

    FIELDS: ClassVar[dict[str, type]] = {
        "created_ts": np.int64,
        "segment": np.int8,
        "country": np.int8,
        "change_ts": np.int64,
        "segment2": np.int8,
        "country2": np.int8,
        "rate": np.float64,
        "hazard": np.float64,
        "support": np.float64,
        "active": bool,
        "source": np.int8,
    }

    def __init__(self) -> None:
        self.n = 0
        self._a = {k: np.empty(1024, dtype=t) for k, t in self.FIELDS.items()}
        self.emails: list[str] = []
        self.used_emails: set[str] = set()

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["_a"][name][: self.__dict__["n"]]
        except KeyError:
            raise AttributeError(name) from None

    def append(self, **cols: np.ndarray) -> None:
        k = len(cols["created_ts"])
        if self.n + k > len(self._a["created_ts"]):
            size = max(2 * len(self._a["created_ts"]), self.n + k)
            for name, arr in self._a.items():
                grown = np.empty(size, dtype=arr.dtype)
                grown[: self.n] = arr[: self.n]
                self._a[name] = grown
        for name, values in cols.items():
            self._a[name][self.n : self.n + k] = values
        self.n += k

    def segment_at(self, idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return np.where(self.change_ts[idx] <= ts, self.segment2[idx], self.segment[idx])

    def country_at(self, idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return np.where(self.change_ts[idx] <= ts, self.country2[idx], self.country[idx])


@dataclass
class Simulation:
    """Everything the company did over the simulated days, with full future lifecycles."""

    calendar: Calendar
    seed: int
    scale: float
    products: Products
    campaigns: Campaigns
    agents: Agents
    fx: dict[str, np.ndarray]
    ads: dict[str, np.ndarray]
    customers: dict[str, np.ndarray]
    signups: dict[str, np.ndarray]
    orders: dict[str, np.ndarray]
    items: dict[str, np.ndarray]
    refunds: dict[str, np.ndarray]
    tickets: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    time_entries: dict[str, np.ndarray]


class Simulator:
    def __init__(self, seed: int, scale: float, calendar: Calendar) -> None:
        self.seed, self.scale, self.cal = seed, scale, calendar
        self.products = plan_products(calendar, seed)
        self.campaigns = plan_campaigns(calendar, seed, scale)
        self.agents = plan_agents(calendar, seed)
        self.customers = CustomerState()
        self.order_count = 0
        self.signup_count = 0
        self.ticket_count = 10_000
        # tickets that orders will cause, by the day they will be created
        self.ticket_schedule: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
        self._init_prices()
        self._init_fx()
        self.fx = Chunks(day=np.int64, currency=np.int8, rate=np.float64)
        self.ads = Chunks(
            day=np.int64,
            campaign=np.int64,
            impressions=np.int64,
            clicks=np.int64,
            spend=np.int64,
            spend_usd=np.float64,
            conversions=np.int64,
            restate_jitter=np.float64,
        )
        self.new_customers = Chunks(
            email=object,
            full_name=object,
            created_ts=np.int64,
            country=np.int8,
            segment=np.int8,
            change_ts=np.int64,
            country2=np.int8,
            segment2=np.int8,
            source=np.int8,
            campaign=np.int64,
        )
        self.signups = Chunks(
            signup_no=np.int64,
            customer_no=np.int64,
            email=object,
            signed_up_ts=np.int64,
            utm_source=object,
            utm_medium=object,
            utm_campaign=object,
            landing_before=object,
            landing_after=object,
            fix_ts=np.int64,
        )
        self.orders = Chunks(
            order_no=np.int64,
            customer_no=np.int64,
            ordered_ts=np.int64,
            currency=np.int8,
            rate=np.float64,
            subtotal=np.int64,
            discount=np.int64,
            shipping=np.int64,
            tax=np.int64,
            total=np.int64,
            cogs_usd=np.int64,
            paid_ts=np.int64,
            shipped_ts=np.int64,
            completed_ts=np.int64,
            cancelled_ts=np.int64,
            refunded_ts=np.int64,
        )
        self.items = Chunks(
            order_no=np.int64,
            line=np.int64,
            product=np.int64,
            quantity=np.int64,
            unit_price=np.int64,
        )
        self.refunds = Chunks(
            order_no=np.int64, refunded_ts=np.int64, amount=np.int64, reason=object
        )
        self.tickets = Chunks(
            ticket_id=np.int64,
            customer_no=np.int64,
            email=object,
            subject=object,
            category=np.int8,
            channel=np.int8,
            priority=np.int8,
            created_ts=np.int64,
            assignee_id=np.int64,
            assigned_ts=np.int64,
            first_reply_ts=np.int64,
            breached=bool,
            solved_ts=np.int64,
        )
        self.events = Chunks(
            ticket_id=np.int64,
            seq=np.int64,
            ts=np.int64,
            event_type=np.int8,
            role=np.int8,
            is_public=np.int8,
            new_status=np.int8,
            score=np.int8,
        )
        self.time_entries = Chunks(
            ticket_id=np.int64,
            agent_id=np.int64,
            minutes=np.int64,
            logged_ts=np.int64,
            cost_cents_per_hour=np.int64,
            currency=object,
        )

    # --- state that carries from day to day ----------------------------------------------

    def _init_prices(self) -> None:
        p = self.products
        self.list_price = np.zeros(len(p.product_id), dtype=np.int64)
        self.unit_cost = np.zeros(len(p.product_id), dtype=np.int64)
        order = np.argsort(p.ev_ts, kind="stable")
        self._price_events = order
        self._price_pos = 0
        self._apply_prices_before(self.cal.start_ts)

    def _apply_prices_before(self, ts: int) -> None:
        p, order = self.products, self._price_events
        while self._price_pos < len(order) and p.ev_ts[order[self._price_pos]] < ts:
            e = order[self._price_pos]
            self.list_price[p.ev_product[e]] = p.ev_list_price[e]
            self.unit_cost[p.ev_product[e]] = p.ev_unit_cost[e]
            self._price_pos += 1

    def _init_fx(self) -> None:
        r = rng(self.seed, Stream.FX_START)
        self.eur = float(r.uniform(1.07, 1.12))
        self.cny = float(r.uniform(0.138, 0.142))
        # rates in force (the latest published): USD, EUR, CNY
        self.rate = np.array([1.0, round(self.eur, 6), round(self.cny, 6)])

    # --- one day ---------------------------------------------------------------------------

    def step(self, d: int) -> None:
        t0 = self.cal.day_ts(d)
        self._fx(d)
        self._apply_prices_before(t0 + DAY)
        # customers whose shop account exists by this morning (the newest few may have
        # signed up late yesterday and been created just after midnight)
        born = self.customers.n
        existing = self.customers.created_ts < t0
        first_orders = self._acquire(d)
        repeat = self._repeat_orders(d, born, existing)
        self._orders(d, first_orders, repeat)
        self._tickets(d, np.flatnonzero(existing))

    def _fx(self, d: int) -> None:
        """EUR and CNY follow mean-reverting random walks, published on weekdays only."""
        r = rng(self.seed, Stream.FX, d)
        z = r.normal(size=2)
        self.eur = float(np.clip(self.eur + 0.03 * (1.10 - self.eur) + 0.004 * z[0], 1.05, 1.15))
        self.cny = float(np.clip(self.cny + 0.03 * (0.14 - self.cny) + 0.0004 * z[1], 0.135, 0.145))
        self.fx.add(day=[d], currency=[0], rate=[1.0])
        weekday = self.cal.weekday(d)
        if d == 0 and weekday >= 5:
            # a world starting at a weekend gets the Friday before, so every amount has a rate
            friday = d - (weekday - 4)
            self.fx.add(day=[friday, friday], currency=[1, 2], rate=self.rate[1:])
        if weekday < 5:
            self.rate = np.array([1.0, round(self.eur, 6), round(self.cny, 6)])
            self.fx.add(day=[d, d], currency=[1, 2], rate=self.rate[1:])

    def _acquire(self, d: int) -> dict[str, np.ndarray]:
        """Ad spend today, and the customers it (and word of mouth) brings."""
        cal, c, scale = self.cal, self.campaigns, self.scale
        t0, g, season, weekend = cal.day_ts(d), cal.growth(d), cal.season(d), cal.is_weekend(d)
        ra = rng(self.seed, Stream.ADS, d)
        rc = rng(self.seed, Stream.ACQUISITION, d)
        run = np.flatnonzero(c.running[:, d])
        ch = c.channel[run]
        weekend_spend = np.array([CHANNELS[i].weekend_spend for i in ch]) if weekend else 1.0
        acct_ccy = np.array([CURRENCIES.index(CHANNELS[i].currency) for i in ch], dtype=np.int64)
        pacing = ra.uniform(0.82, 1.0, size=len(run))
        spend = np.rint(c.budget[run, d] * pacing * weekend_spend * (1 + 0.5 * (season - 1)))
        spend = spend.astype(np.int64)
        spend_usd = spend / 100 * self.rate[acct_ccy]
        cpm = np.array([CHANNELS[i].cpm_usd for i in ch])
        ctr = np.array([CHANNELS[i].ctr for i in ch])
        impressions = ra.poisson(spend_usd / cpm * 1000 * ra.lognormal(0, 0.15, size=len(run)))
        clicks = ra.binomial(impressions, np.clip(ctr / np.sqrt(c.quality[run]), 0, 0.5))
        # recent days are not final yet: 1, 2, 3 days old = ~85 %, ~93 %, ~98 % of final
        jitter = ra.normal(0, 0.012, size=len(run))

        cac = np.array([CHANNELS[i].cac_usd for i in ch]) * OBJECTIVE_CAC[c.objective[run]]
        expected = spend_usd / (cac * c.quality[run]) * season**0.3
        paid = rc.poisson(expected)
        conversions = ra.poisson(paid * np.array([CHANNELS[i].claim for i in ch]) + clicks * 0.002)
        self.ads.add(
            day=np.full(len(run), d),
            campaign=run,
            impressions=impressions,
            clicks=clicks,
            spend=spend,
            spend_usd=spend_usd,
            conversions=conversions,
            restate_jitter=jitter,
        )

        organic = rc.poisson(ORGANIC_PER_DAY * scale * g * season * (0.85 if weekend else 1.06))
        staff = rc.poisson(UNATTRIBUTED_PER_DAY * scale * g * (0.4 if weekend else 1.24))
        source = np.concatenate(
            [np.repeat(ch, paid), np.full(organic, ORGANIC), np.full(staff, UNATTRIBUTED)]
        ).astype(np.int8)
        campaign = np.concatenate([np.repeat(run, paid), np.full(organic + staff, -1)])
        return self._new_customers(rc, t0, source, campaign)

    def _new_customers(
        self, r: np.random.Generator, t0: int, source: np.ndarray, campaign: np.ndarray
    ) -> dict[str, np.ndarray]:
        n = len(source)
        mix = np.cumsum(np.array(SOURCE_SEGMENT_MIX)[source], axis=1)
        u = r.random(n)
        segment = ((u > mix[:, 0]).astype(np.int8) + (u > mix[:, 1])).astype(np.int8)
        country = r.choice(len(COUNTRIES), size=n, p=COUNTRY_P).astype(np.int8)
        business = segment > 0
        signed_up = t0 + seconds_of_day(r, business)
        staff_made = source == UNATTRIBUTED
        # staff create accounts during office hours; everyone else signs up, then the
        # shop account follows within minutes
        created = np.where(
            staff_made,
            t0 + seconds_of_day(r, np.ones(n, bool)),
            signed_up + 30 + r.exponential(180, size=n).astype(np.int64),
        )
        order_p = FIRST_ORDER_P[segment]
        first = r.random(n) < order_p
        first_ts = created + 120 + r.lognormal(np.log(600), 0.8, size=n).astype(np.int64)
        rate = ORDER_RATE[segment] * SOURCE_ORDER_RATE[source] * r.lognormal(-0.125, 0.5, size=n)
        hazard = CHURN_HAZARD[segment] * SOURCE_CHURN[source]
        # some customers later move up a segment or move country
        change = r.random(n)
        change_ts = created + ((1 + r.exponential(200, size=n)) * DAY).astype(np.int64)
        upgrade = (change < 0.06) & (segment < 2)
        moves = ((change < 0.06) & (segment == 2)) | ((change >= 0.06) & (change < 0.09))
        segment2 = np.where(upgrade, segment + 1, segment).astype(np.int8)
        country2 = np.where(
            moves,
            (country + 1 + r.integers(0, len(COUNTRIES) - 1, size=n)) % len(COUNTRIES),
            country,
        ).astype(np.int8)
        change_ts = np.where(upgrade | moves, change_ts, NEVER)

        # order customers by the time the shop account is created (they get the ids)
        order = np.argsort(created, kind="stable")
        cols = {
            "segment": segment,
            "country": country,
            "created_ts": created,
            "change_ts": change_ts,
            "segment2": segment2,
            "country2": country2,
            "source": source,
            "campaign": campaign,
            "signed_up": signed_up,
            "first": first,
            "first_ts": first_ts,
            "rate": rate,
            "hazard": hazard,
        }
        cols = {k: v[order] for k, v in cols.items()}
        full_names, emails = self._names(r, cols["country"])
        base = self.customers.n
        self.customers.append(
            created_ts=cols["created_ts"],
            segment=cols["segment"],
            country=cols["country"],
            change_ts=cols["change_ts"],
            segment2=cols["segment2"],
            country2=cols["country2"],
            rate=cols["rate"],
            hazard=cols["hazard"],
            support=np.ones(n),
            active=np.ones(n, bool),
            source=cols["source"],
        )
        self.customers.emails += emails
        self.new_customers.add(
            email=emails,
            full_name=full_names,
            created_ts=cols["created_ts"],
            country=cols["country"],
            segment=cols["segment"],
            change_ts=cols["change_ts"],
            country2=cols["country2"],
            segment2=cols["segment2"],
            source=cols["source"],
            campaign=cols["campaign"],
        )
        self._signups(r, base, cols, emails)
        idx = base + np.flatnonzero(cols["first"])
        return {"customer": idx, "ts": cols["first_ts"][cols["first"]]}

    def _names(self, r: np.random.Generator, country: np.ndarray) -> tuple[list[str], list[str]]:
        full_names, emails = [], []
        local_names = r.random(len(country)) < 0.75
        picks = r.random((len(country), 4))
        for i, k in enumerate(country):
            region = COUNTRY_REGION[k] if local_names[i] else "en"
            first_pool, last_pool = names.FIRST_NAMES[region], names.LAST_NAMES[region]
            first = first_pool[int(picks[i, 0] * len(first_pool))]
            last = last_pool[int(picks[i, 1] * len(last_pool))]
            number = 1 + int(picks[i, 2] * 999)
            domain = names.CUSTOMER_DOMAINS[int(picks[i, 3] * 1.6) % 2]
            local = f"{ascii_slug(first)}.{ascii_slug(last)}{number}"
            email = f"{local}@{domain}"
            if email in self.customers.used_emails:
                # unique by construction: the customer number is unique
                email = f"{local}.{self.customers.n + i + 1}@{domain}"
            self.customers.used_emails.add(email)
            full_names.append(f"{first} {last}")
            emails.append(email)
        return full_names, emails

    def _signups(
        self, r: np.random.Generator, base: int, cols: dict[str, np.ndarray], emails: list[str]
    ) -> None:
        """The web tracker records every sign-up except accounts staff created."""
        keep = np.flatnonzero(cols["source"] != UNATTRIBUTED)
        n = len(keep)
        if n == 0:
            return
        source, campaign = cols["source"][keep], cols["campaign"][keep]
        paid = source < ORGANIC
        unknown = paid & (r.random(n) < 0.04)
        unknown_no = r.integers(0, 1000, size=n)
        utm_source = np.full(n, None, dtype=object)
        utm_medium = np.full(n, None, dtype=object)
        utm_campaign = np.full(n, None, dtype=object)
        for j in np.flatnonzero(paid):
            channel = CHANNELS[source[j]]
            utm_source[j], utm_medium[j] = channel.utm_source, channel.utm_medium
            utm_campaign[j] = (
                f"{channel.prefix}-9{unknown_no[j]:03d}"
                if unknown[j]
                else self.campaigns.campaign_id[campaign[j]]
            )
        pages = np.array(names.LANDING_PAGES, dtype=object)
        landing = np.where(
            paid, pages[r.integers(4, len(pages), size=n)], pages[r.integers(0, 4, size=n)]
        )
        # a tracking bug loses some landing pages; they are fixed up days later
        broken = r.random(n) < 0.08
        fix_delay = (0.5 + r.exponential(15, size=n)) * DAY
        fix_ts = cols["signed_up"][keep] + fix_delay.astype(np.int64)
        self.signups.add(
            signup_no=self.signup_count + 1 + np.arange(n),
            customer_no=base + 1 + keep,
            email=[emails[k] for k in keep],
            signed_up_ts=cols["signed_up"][keep],
            utm_source=utm_source,
            utm_medium=utm_medium,
            utm_campaign=utm_campaign,
            landing_before=np.where(broken, None, landing),
            landing_after=landing,
            fix_ts=np.where(broken, fix_ts, NEVER),
        )
        self.signup_count += n

    def _repeat_orders(self, d: int, born: int, existing: np.ndarray) -> dict[str, np.ndarray]:
        """Existing customers go quiet, come back, and order again."""
        cust = self.customers
        t0 = self.cal.day_ts(d)
        r = rng(self.seed, Stream.REPEAT, d)
        u = r.random((3, born))
        active = cust.active[:born]
        support = cust.support[:born]
        goes_quiet = existing & active & (u[0] < cust.hazard[:born] / support)
        comes_back = existing & ~active & (u[1] < REACTIVATION_HAZARD)
        active[:] = (active & ~goes_quiet) | comes_back
        segment = cust.segment_at(np.arange(born), np.full(born, t0))
        weekday = WEEKDAY_FACTOR[segment, int(self.cal.is_weekend(d))]
        p = cust.rate[:born] * support * weekday * self.cal.season(d)
        buyers = np.flatnonzero(existing & active & (u[2] < p))
        ts = t0 + seconds_of_day(r, segment[buyers] > 0)
        return {"customer": buyers, "ts": ts}

    def _orders(self, d: int, first: dict[str, np.ndarray], repeat: dict[str, np.ndarray]) -> None:
        cust_idx = np.concatenate([first["customer"], repeat["customer"]]).astype(np.int64)
        ts = np.concatenate([first["ts"], repeat["ts"]]).astype(np.int64)
        is_first = np.concatenate(
            [np.ones(len(first["ts"]), bool), np.zeros(len(repeat["ts"]), bool)]
        )
        order = np.lexsort((cust_idx, ts))
        cust_idx, ts, is_first = cust_idx[order], ts[order], is_first[order]
        n = len(ts)
        if n == 0:
            return
        r = rng(self.seed, Stream.ORDERS, d)
        order_no = self.order_count + 1 + np.arange(n)
        self.order_count += n
        segment = self.customers.segment_at(cust_idx, ts)
        country = self.customers.country_at(cust_idx, ts)
        ccy = COUNTRY_CURRENCY[country]
        rate = self.rate[ccy]

        # items: ~2.5 lines, businesses buy more of each
        lines = (
            1
            + np.minimum(r.poisson(1.4, size=n), 7)
            + np.where(segment == 2, r.poisson(0.8, size=n), 0)
        )
        starts = np.concatenate([[0], np.cumsum(lines)[:-1]])
        line_order = np.repeat(np.arange(n), lines)
        line_no = np.arange(len(line_order)) - starts[line_order] + 1
        product = r.choice(len(self.list_price), size=len(line_order), p=self.products.popularity)
        line_seg = segment[line_order]
        uq = r.random(len(line_order))
        quantity = np.select(
            [line_seg == 0, line_seg == 1],
            [1 + (uq < 0.15) + (uq < 0.03), 1 + r.poisson(1.2, size=len(line_order))],
            1 + r.poisson(4, size=len(line_order)),
        ).astype(np.int64)
        unit_price = np.rint(self.list_price[product] / rate[line_order]).astype(np.int64)
        subtotal = np.add.reduceat(quantity * unit_price, starts)
        cogs = np.add.reduceat(quantity * self.unit_cost[product], starts)

        has_discount = r.random(n) < np.where(is_first, 0.35, 0.15)
        pct = r.choice([5, 10, 15, 20], size=n)
        discount = np.where(has_discount, np.rint(subtotal * pct / 100), 0).astype(np.int64)
        net = subtotal - discount
        shipping = np.where(net >= FREE_SHIPPING_FROM[ccy], 0, SHIPPING[ccy])
        tax = np.rint((net + shipping) * COUNTRY_TAX[country]).astype(np.int64)
        total = net + shipping + tax

        timeline = self._order_timeline(r, ts)
        self.orders.add(
            order_no=order_no,
            customer_no=cust_idx + 1,
            ordered_ts=ts,
            currency=ccy,
            rate=rate,
            subtotal=subtotal,
            discount=discount,
            shipping=shipping,
            tax=tax,
            total=total,
            cogs_usd=cogs,
            **{k: timeline[k] for k in ORDER_TIMELINE},
        )
        self.items.add(
            order_no=order_no[line_order],
            line=line_no,
            product=product,
            quantity=quantity,
            unit_price=unit_price,
        )
        self._refunds(r, order_no, net, timeline)
        self._order_tickets(r, cust_idx, order_no, ts, timeline)

    def _order_timeline(self, r: np.random.Generator, ts: np.ndarray) -> dict[str, np.ndarray]:
        """pending -> paid -> shipped -> completed, cancellations, and refunds to come."""
        n = len(ts)
        u = r.random((6, n))
        never_paid = u[0] < 0.03
        bank_transfer = u[1] < 0.07
        pay_delay = np.where(
            bank_transfer,
            r.uniform(2 * HOUR, 48 * HOUR, size=n),
            30 + r.lognormal(np.log(120), 0.9, size=n),
        )
        paid = np.where(never_paid, NEVER, ts + pay_delay.astype(np.int64))
        cancelled = np.where(never_paid, ts + _seconds(r, DAY, 3 * DAY, n), NEVER)
        cancelled_after_pay = ~never_paid & (u[2] < 0.015)
        cancelled = np.where(cancelled_after_pay, paid + _seconds(r, HOUR, 20 * HOUR, n), cancelled)
        goes_out = ~never_paid & ~cancelled_after_pay
        shipped = np.where(goes_out, paid + _seconds(r, 20 * HOUR, 70 * HOUR, n), NEVER)
        completed = np.where(goes_out, shipped + _seconds(r, 2 * DAY, 5 * DAY, n), NEVER)
        # refunds after completion: full (status -> refunded) or partial (status stays);
        # about 1 in 2000 orders gets both, refunding more than was paid (a data error)
        full = goes_out & (u[3] < 0.025)
        partial = goes_out & (u[3] >= 0.025) & (u[3] < 0.085)
        over = goes_out & (u[4] < 1 / 2000)
        late = r.random((2, n)) < 0.1
        full_ts = (
            completed
            + HOUR
            + (r.exponential(6, size=n) * DAY).astype(np.int64)
            + np.where(late[0], r.integers(20, 70, size=n) * DAY, 0)
        )
        partial_ts = (
            completed
            + HOUR
            + (r.exponential(10, size=n) * DAY).astype(np.int64)
            + np.where(late[1], r.integers(20, 70, size=n) * DAY, 0)
        )
        full |= over
        partial |= over
        return {
            "paid_ts": paid,
            "shipped_ts": shipped,
            "completed_ts": completed,
            "cancelled_ts": cancelled,
            "refunded_ts": np.where(full, full_ts, NEVER),
            "full": full,
            "partial": partial,
            "partial_ts": np.where(partial, partial_ts, NEVER),
            "share": r.uniform(0.1, 0.5, size=n),
            "reason": r.random((2, n)),
        }

    def _refunds(
        self,
        r: np.random.Generator,
        order_no: np.ndarray,
        net: np.ndarray,
        t: dict[str, np.ndarray],
    ) -> None:
        full, partial = np.flatnonzero(t["full"]), np.flatnonzero(t["partial"])
        full_reasons = np.array(REFUND_REASONS_FULL, dtype=object)
        partial_reasons = np.array(REFUND_REASONS_PARTIAL, dtype=object)
        self.refunds.add(
            order_no=np.concatenate([order_no[full], order_no[partial]]),
            refunded_ts=np.concatenate([t["refunded_ts"][full], t["partial_ts"][partial]]),
            amount=np.concatenate([net[full], np.rint(net[partial] * t["share"][partial])]),
            reason=np.concatenate(
                [
                    full_reasons[(t["reason"][0][full] * len(full_reasons)).astype(int)],
                    partial_reasons[(t["reason"][1][partial] * len(partial_reasons)).astype(int)],
                ]
            ),
        )

    def _order_tickets(
        self,
        r: np.random.Generator,
        cust_idx: np.ndarray,
        order_no: np.ndarray,
        ts: np.ndarray,
        t: dict[str, np.ndarray],
    ) -> None:
        """Some orders make their customer write to support, days later."""
        n = len(ts)
        u = r.random((3, n))
        recognized = t["cancelled_ts"] == NEVER
        cancelled = ~recognized
        refunded = (t["refunded_ts"] < NEVER) | (t["partial_ts"] < NEVER)
        # an issue with delivery, the product or the bill
        issue = recognized & (u[0] < 0.12)
        kind = np.searchsorted([0.45, 0.8], u[1])  # 0 delivery, 1 product, 2 billing
        issue_ts = np.select(
            [kind == 0, kind == 1],
            [
                t["shipped_ts"] + r.uniform(DAY, 4 * DAY, size=n),
                t["completed_ts"] + r.uniform(0.2 * DAY, 8 * DAY, size=n),
            ],
            ts + r.uniform(HOUR, 2 * DAY, size=n),
        ).astype(np.int64)
        issue_cat = np.array([1, 2, 0])[kind]
        # a cancelled order: the customer asks about the money
        asks = cancelled & (u[0] < 0.12)
        asks_ts = np.minimum(t["cancelled_ts"], NEVER - DAY) + _seconds(r, 600, DAY, n)
        # a refund usually follows a complaint
        refund_ts = np.minimum(t["refunded_ts"], t["partial_ts"])
        complains = refunded & (u[2] < 0.45)
        complain_ts = np.maximum(refund_ts - _seconds(r, 0.2 * DAY, 3 * DAY, n), ts + HOUR)
        complain_cat = np.where(t["full"] | (u[1] < 0.5), 2, 1)
        sel = [np.flatnonzero(issue), np.flatnonzero(asks), np.flatnonzero(complains)]
        created = np.concatenate([issue_ts[sel[0]], asks_ts[sel[1]], complain_ts[sel[2]]])
        category = np.concatenate(
            [issue_cat[sel[0]], np.zeros(len(sel[1]), np.int64), complain_cat[sel[2]]]
        )
        which = np.concatenate(sel)
        day = (created - self.cal.start_ts) // DAY
        for k in np.unique(day):
            if k >= self.cal.days:
                continue
            m = day == k
            self.ticket_schedule[int(k)].append(
                {
                    "customer": cust_idx[which[m]],
                    "ts": created[m],
                    "category": category[m],
                    "order_no": order_no[which[m]],
                }
            )

    # --- support ---------------------------------------------------------------------------

    def _tickets(self, d: int, eligible: np.ndarray) -> None:
        cal, scale = self.cal, self.scale
        t0, weekend = cal.day_ts(d), cal.is_weekend(d)
        r = rng(self.seed, Stream.TICKETS, d)
        volume = scale * cal.growth(d) * (0.7 if weekend else 1.12)
        scheduled = self.ticket_schedule.pop(d, [])
        parts = {k: [s[k] for s in scheduled] for k in ("customer", "ts", "category", "order_no")}
        n_spont = r.poisson(SPONTANEOUS_TICKETS_PER_DAY * volume) if len(eligible) else 0
        spont_cat = r.choice([3, 0, 4, 2], size=n_spont, p=[0.4, 0.2, 0.2, 0.2])
        n_visit = r.poisson(VISITOR_TICKETS_PER_DAY * volume)
        visit_cat = r.choice([4, 3, 2], size=n_visit, p=[0.5, 0.25, 0.25])
        business = np.ones(n_spont + n_visit, bool)
        parts["customer"] += [
            eligible[r.integers(0, max(len(eligible), 1), size=n_spont)],
            np.full(n_visit, -1),
        ]
        parts["ts"] += [t0 + seconds_of_day(r, business)]
        parts["category"] += [spont_cat, visit_cat]
        parts["order_no"] += [np.zeros(n_spont + n_visit, np.int64)]
        cols = {k: np.concatenate(v).astype(np.int64) for k, v in parts.items()}
        order = np.lexsort((cols["order_no"], cols["customer"], cols["ts"]))
        cols = {k: v[order] for k, v in cols.items()}
        n = len(order)
        if n == 0:
            return
        ticket_id = self.ticket_count + 1 + np.arange(n)
        self.ticket_count += n
        customer, created, category = cols["customer"], cols["ts"], cols["category"]
        is_customer = customer >= 0
        segment = np.zeros(n, dtype=np.int8)
        known = np.flatnonzero(is_customer)
        segment[known] = self.customers.segment_at(customer[known], created[known])

        # priority: billing trouble is more pressing; enterprise customers get a step up
        weights = np.where(
            (category == 0)[:, None], [0.15, 0.45, 0.3, 0.1], [0.25, 0.5, 0.18, 0.07]
        )
        priority = (r.random(n)[:, None] > np.cumsum(weights, axis=1)[:, :3]).sum(axis=1)
        priority = np.minimum(priority + ((segment == 2) & (r.random(n) < 0.5)), 3)
        channel = r.choice(4, size=n, p=[0.45, 0.25, 0.2, 0.1])
        emails = self._requester_emails(r, customer)
        subjects = self._subjects(r, category, cols["order_no"])

        # first reply: slower under load, at night and at weekends
        # the team grows by a quarter every 240 days, behind the business; half of it
        # works at weekends
        staffing = (1 + 0.25 * (d // 240)) * (0.5 if weekend else 1.1)
        capacity = SUPPORT_CAPACITY_PER_DAY * scale * staffing
        load = np.clip((n / capacity / 0.7) ** 1.5, 0.5, 3.0)
        hour = (created - t0) // HOUR
        night = (hour < 7) | (hour >= 20)
        off_hours = np.where(night, np.where(priority >= 2, 1.3, 1.8), 1.0)
        first_reply_min = (
            FIRST_REPLY_MEDIAN[priority] * load * off_hours * r.lognormal(0, 0.7, size=n)
        )
        breached = first_reply_min > SLA_MINUTES[priority]
        life = self._ticket_life(r, created, priority, breached, np.maximum(first_reply_min, 1.0))

        first_reply = life["ts"][:, Slot.FIRST_REPLY]
        team = np.array([CATEGORY_TEAM[TICKET_CATEGORIES[c]] for c in category], dtype=np.int64)
        assignee = self._assign(r, team, t0)
        self.tickets.add(
            ticket_id=ticket_id,
            customer_no=np.where(is_customer, customer + 1, 0),
            email=emails,
            subject=subjects,
            category=category,
            channel=channel,
            priority=priority,
            created_ts=created,
            assignee_id=self.agents.agent_id[assignee],
            assigned_ts=first_reply,
            first_reply_ts=first_reply,
            breached=breached,
            solved_ts=life["final_solve"],
        )
        self._events(ticket_id, channel, life)
        self._time_entries(r, ticket_id, assignee, team, priority, life)
        # customers who were let down buy less and go quiet sooner
        poor = is_customer & (breached | life["bad"])
        hurt = customer[poor]
        support = self.customers.support
        support[hurt] = np.maximum(support[hurt] * POOR_SUPPORT_EFFECT, 0.15)

    def _requester_emails(self, r: np.random.Generator, customer: np.ndarray) -> list[str]:
        """Customers' addresses, some typed with other capitals or stray spaces; visitors'
        addresses on a domain no customer uses."""
        out = []
        u = r.random((len(customer), 4))
        for i, c in enumerate(customer):
            if c < 0:
                region = ("en", "de", "fr", "es")[int(u[i, 1] * 4)]
                first = names.FIRST_NAMES[region][int(u[i, 2] * len(names.FIRST_NAMES[region]))]
                out.append(f"{ascii_slug(first)}{int(u[i, 3] * 9000) + 100}@{names.VISITOR_DOMAIN}")
                continue
            email = self.customers.emails[c]
            if u[i, 0] < 0.12:
                email = _vary_email(email, int(u[i, 1] * 4))
            out.append(email)
        return out

    def _subjects(
        self, r: np.random.Generator, category: np.ndarray, order_no: np.ndarray
    ) -> list[str]:
        picks = r.random(len(category))
        out = []
        for c, o, p in zip(category, order_no, picks, strict=True):
            templates = names.TICKET_SUBJECTS[TICKET_CATEGORIES[c]]
            if o == 0:
                templates = tuple(t for t in templates if "{order}" not in t)
            out.append(templates[int(p * len(templates))].replace("{order}", f"#{order_id(o)}"))
        return out

    def _ticket_life(
        self,
        r: np.random.Generator,
        created: np.ndarray,
        priority: np.ndarray,
        breached: np.ndarray,
        first_reply_min: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """All events a ticket will ever have, as a (tickets x Slot) matrix of timestamps
        (-1: this ticket has no such event)."""
        n = len(created)
        u = r.random((5, n))
        ts = np.full((n, len(Slot)), -1, dtype=np.int64)
        ts[:, Slot.CREATED] = created
        t1 = created + (first_reply_min * MINUTE).astype(np.int64)
        ts[:, Slot.FIRST_REPLY] = t1
        ts[:, Slot.OPENED] = t1 + 1
        note = u[0] < 0.25
        ts[note, Slot.NOTE] = t1[note] + r.integers(5 * MINUTE, 2 * HOUR, size=n)[note]
        # the agent needs something from the customer: pending until they answer
        asks = u[1] < 0.4
        answer = t1 + 600 + r.exponential(18 * HOUR, size=n).astype(np.int64)
        follow_up = answer + 300 + r.lognormal(np.log(90 * MINUTE), 0.8, size=n).astype(np.int64)
        ts[asks, Slot.ASKED] = t1[asks] + 2
        ts[asks, Slot.ANSWER] = answer[asks]
        ts[asks, Slot.ANSWER_REOPENS] = answer[asks] + 1
        ts[asks, Slot.FOLLOW_UP] = follow_up[asks]
        last_agent = np.where(asks, follow_up, t1)
        work = r.exponential(1, size=n) * SOLVE_MEAN_HOURS[priority] * HOUR
        solved = last_agent + 300 + work.astype(np.int64)
        ts[:, Slot.SOLVED] = solved
        # "still broken": reopened within the four days before closing, more often when
        # the first reply was late
        reopened = u[2] < 0.07 + 0.08 * breached
        back = solved + r.integers(2 * HOUR, int(3.5 * DAY), size=n)
        second = back + 300 + r.lognormal(np.log(120 * MINUTE), 0.7, size=n).astype(np.int64)
        solved_again = second + 300 + r.exponential(4 * HOUR, size=n).astype(np.int64)
        ts[reopened, Slot.COMPLAINT] = back[reopened]
        ts[reopened, Slot.REOPENED] = back[reopened] + 1
        ts[reopened, Slot.SECOND_ANSWER] = second[reopened]
        ts[reopened, Slot.SOLVED_AGAIN] = solved_again[reopened]
        final_solve = np.where(reopened, solved_again, solved)
        rated = u[3] < 0.4
        ts[rated, Slot.RATED] = final_solve[rated] + r.integers(10 * MINUTE, 2 * DAY, size=n)[rated]
        p_bad = (
            0.08
            + 0.3 * breached
            + 0.3 * reopened
            + 0.1 * (first_reply_min > 2 * SLA_MINUTES[priority])
        )
        bad = rated & (u[4] < np.clip(p_bad, 0, 0.9))
        ts[:, Slot.CLOSED] = final_solve + 4 * DAY + r.integers(0, 2 * HOUR, size=n)
        return {"ts": ts, "bad": bad, "final_solve": final_solve}

    def _events(
        self, ticket_id: np.ndarray, channel: np.ndarray, life: dict[str, np.ndarray]
    ) -> None:
        ts = life["ts"]
        for slot, (etype, role, public, status) in EVENT_SLOTS.items():
            present = np.flatnonzero(ts[:, slot] >= 0)
            k = len(present)
            roles = np.full(k, ROLES.index(role))
            if slot == Slot.CREATED:  # phone tickets are logged by the helpdesk itself
                roles[channel[present] == TICKET_CHANNELS.index("phone")] = ROLES.index("system")
            if etype == "satisfaction_rated":
                score = np.where(life["bad"][present], SCORES.index("bad"), SCORES.index("good"))
            else:
                score = np.full(k, -1)
            self.events.add(
                ticket_id=ticket_id[present],
                seq=np.full(k, int(slot)),
                ts=ts[present, slot],
                event_type=np.full(k, EVENT_TYPES.index(etype)),
                role=roles,
                is_public=np.full(k, -1 if public is None else int(public)),
                new_status=np.full(k, TICKET_STATUSES.index(status) if status else -1),
                score=score,
            )

    def _assign(self, r: np.random.Generator, team: np.ndarray, t0: int) -> np.ndarray:
        """An agent of the ticket's team, never one who leaves within ten days."""
        a = self.agents
        pick = r.random(len(team))
        out = np.empty(len(team), dtype=np.int64)
        for k in np.unique(team):
            members = np.flatnonzero((a.team == k) & (a.left_ts > t0 + 10 * DAY))
            m = team == k
            out[m] = members[(pick[m] * len(members)).astype(int)]
        return out

    def _time_entries(
        self,
        r: np.random.Generator,
        ticket_id: np.ndarray,
        assignee: np.ndarray,
        team: np.ndarray,
        priority: np.ndarray,
        life: dict[str, np.ndarray],
    ) -> None:
        """Agents log 1-4 entries per ticket, at the times they worked on it."""
        ts = life["ts"][:, AGENT_WORK_SLOTS]
        n = len(ticket_id)
        take = (ts >= 0) & (r.random(ts.shape) < 0.45)
        take[:, 0] = True  # the first reply always takes time
        take &= np.cumsum(take, axis=1) <= 4
        row, col = np.nonzero(take)
        minutes = np.clip(
            np.rint(
                r.lognormal(np.log(9), 0.6, size=len(row)) * np.where(priority[row] >= 2, 1.5, 1.0)
            ),
            3,
            60,
        ).astype(np.int64)
        logged = ts[row, col] + minutes * MINUTE
        a = self.agents
        helper = r.integers(0, len(a.agent_id), size=n)
        agent = np.where(r.random(n) < 0.1, helper, assignee)[row]
        # whoever has left by then hands over to the first colleague who stays
        gone = logged >= a.left_ts[agent]
        stays = np.array(
            [np.flatnonzero((a.team == k) & (a.left_ts == STAYS))[0] for k in range(len(TEAMS))]
        )
        agent = np.where(gone, stays[a.team[agent]], agent)
        self.time_entries.add(
            ticket_id=ticket_id[row],
            agent_id=a.agent_id[agent],
            minutes=minutes,
            logged_ts=logged,
            cost_cents_per_hour=a.hourly_cost[agent],
            currency=a.currency[agent],
        )

    def result(self) -> Simulation:
        return Simulation(
            calendar=self.cal,
            seed=self.seed,
            scale=self.scale,
            products=self.products,
            campaigns=self.campaigns,
            agents=self.agents,
            fx=self.fx.frame(),
            ads=self.ads.frame(),
            customers=self.new_customers.frame(),
            signups=self.signups.frame(),
            orders=self.orders.frame(),
            items=self.items.frame(),
            refunds=self.refunds.frame(),
            tickets=self.tickets.frame(),
            events=self.events.frame(),
            time_entries=self.time_entries.frame(),
        )


def _vary_email(email: str, how: int) -> str:
    """The same address as a person might type it into a support form."""
    local, domain = email.split("@")
    if how == 0:
        return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()
    if how == 1:
        return "  " + email
    if how == 2:
        return email.upper() + " "
    return email[0].upper() + email[1:] + " "


def order_id(no: int | np.ndarray) -> str:
    """The shop's order number as text (snapshot.order_ids formats whole columns alike)."""
    return f"O{int(no):08d}"


def simulate(
    seed: int, scale: float, start: date, days: int, progress: Callable[[str], None] | None = None
) -> Simulation:
    """Simulate ``days`` days from ``start`` (day 0)."""
    sim = Simulator(seed, scale, Calendar(start, days))
    for d in range(days):
        if progress and d % 30 == 0:
            progress(f"simulating {start + timedelta(days=d):%B %Y}")
        sim.step(d)
    return sim.result()
