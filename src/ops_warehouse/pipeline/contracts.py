"""The source contract of ``docs/sources.md`` as data.

Each entity names its source, the fields it serves (with type and whether the field is
required), its primary key and how it is read incrementally. Loaders, the demo world,
the demo server, dbt sources and quality checks all read from here.

Field types: ``text``, ``int``, ``decimal`` (money, 2 decimals), ``float`` (finite),
``date``, ``timestamp`` (UTC), ``bool``. A field may also name a ``format`` its text must
have (``month``: ``YYYY-MM``), checked with the row-level rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = True
    nullable: bool = False
    format: str | None = None  # a text format of sources/rules.py FORMATS, e.g. "month"


@dataclass(frozen=True)
class Entity:
    source: str  # marketing | sales | support
    name: str  # raw table name
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    # how the loader reads it: "cursor" (updated_at/start_time style), "window"
    # (date window re-reading a look-back), "full" (small table, read whole) or "files"
    mode: str
    cursor: str | None = None
    allowed: dict[str, tuple[str, ...]] | None = None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    @property
    def raw_schema(self) -> str:
        return raw_schema(self.source)


def raw_schema(source: str) -> str:
    """The warehouse schema holding a source's raw tables (dlt's dataset)."""
    return f"raw_{source}"


def raw_staging_schema(source: str) -> str:
    """The schema where dlt stages a source's merge and replace loads before it swaps them in."""
    return f"{raw_schema(source)}_staging"


def raw_table(source: str, name: str) -> str:
    """A raw table's qualified name, as the audit tables record it: ``raw_<source>.<name>``."""
    return f"{raw_schema(source)}.{name}"


def F(
    name: str, type_: str, required: bool = True, nullable: bool = False, format: str | None = None
) -> Field:
    return Field(name, type_, required, nullable, format)


CHANNELS = ("google_ads", "meta_ads", "tiktok_ads", "linkedin_ads")
CURRENCIES = ("USD", "EUR", "CNY")
ORDER_STATUSES = ("pending", "paid", "shipped", "completed", "cancelled", "refunded")
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")

ENTITIES: tuple[Entity, ...] = (
    # --- marketing -------------------------------------------------------------------
    Entity(
        "marketing",
        "ad_performance",
        (
            F("date", "date"),
            F("channel", "text"),
            F("campaign_id", "text"),
            F("impressions", "int"),
            F("clicks", "int"),
            F("spend", "decimal"),
            F("currency", "text"),
            F("platform_conversions", "decimal"),
        ),
        ("date", "campaign_id"),
        "window",
        cursor="date",
        allowed={"channel": CHANNELS, "currency": CURRENCIES},
    ),
    Entity(
        "marketing",
        "campaigns",
        (
            F("campaign_id", "text"),
            F("campaign_name", "text"),
            F("channel", "text"),
            F("objective", "text"),
            F("status", "text"),
            F("start_date", "date"),
            F("end_date", "date", nullable=True),
            F("daily_budget", "decimal"),
            F("currency", "text"),
            F("updated_at", "timestamp"),
        ),
        ("campaign_id",),
        "full",
        allowed={
            "channel": CHANNELS,
            "objective": ("acquisition", "retargeting", "brand"),
            "status": ("active", "paused", "ended"),
            "currency": CURRENCIES,
        },
    ),
    Entity(
        "marketing",
        "signups",
        (
            F("signup_id", "text"),
            F("customer_id", "text"),
            F("email", "text"),
            F("signed_up_at", "timestamp"),
            F("utm_source", "text", nullable=True),
            F("utm_medium", "text", nullable=True),
            F("utm_campaign", "text", nullable=True),
            F("landing_page", "text", nullable=True),
            F("updated_at", "timestamp"),
        ),
        ("signup_id",),
        "cursor",
        cursor="updated_at",
    ),
    Entity(
        "marketing",
        "budget",
        (
            F("month", "text", format="month"),
            F("channel", "text"),
            F("planned_spend", "decimal"),
            F("currency", "text"),
        ),
        ("month", "channel"),
        "files",
        allowed={"channel": CHANNELS, "currency": CURRENCIES},
    ),
    Entity(
        "marketing",
        "kpi_targets",
        (F("month", "text", format="month"), F("kpi", "text"), F("target", "float")),
        ("month", "kpi"),
        "files",
    ),
    # --- sales -----------------------------------------------------------------------
    Entity(
        "sales",
        "customers",
        (
            F("customer_id", "text"),
            F("email", "text"),
            F("full_name", "text"),
            F("country", "text"),
            F("segment", "text"),
            F("created_at", "timestamp"),
            F("updated_at", "timestamp"),
        ),
        ("customer_id",),
        "cursor",
        cursor="updated_at",
        allowed={"segment": ("consumer", "smb", "enterprise")},
    ),
    Entity(
        "sales",
        "products",
        (
            F("product_id", "text"),
            F("sku", "text"),
            F("product_name", "text"),
            F("category", "text"),
            F("list_price", "decimal"),
            F("unit_cost", "decimal"),
            F("updated_at", "timestamp"),
        ),
        ("product_id",),
        "cursor",
        cursor="updated_at",
    ),
    Entity(
        "sales",
        "orders",
        (
            F("order_id", "text"),
            F("customer_id", "text"),
            F("order_status", "text"),
            F("ordered_at", "timestamp"),
            F("currency", "text"),
            F("subtotal", "decimal"),
            F("discount", "decimal"),
            F("shipping", "decimal"),
            F("tax", "decimal"),
            F("total", "decimal"),
            F("updated_at", "timestamp"),
        ),
        ("order_id",),
        "cursor",
        cursor="updated_at",
        allowed={"order_status": ORDER_STATUSES, "currency": CURRENCIES},
    ),
    Entity(
        "sales",
        "order_items",
        (
            F("order_item_id", "text"),
            F("order_id", "text"),
            F("product_id", "text"),
            F("quantity", "int"),
            F("unit_price", "decimal"),
            F("updated_at", "timestamp"),
        ),
        ("order_item_id",),
        "cursor",
        cursor="updated_at",
    ),
    Entity(
        "sales",
        "refunds",
        (
            F("refund_id", "text"),
            F("order_id", "text"),
            F("refunded_at", "timestamp"),
            F("amount", "decimal"),
            F("reason", "text", nullable=True),
            F("updated_at", "timestamp"),
        ),
        ("refund_id",),
        "cursor",
        cursor="updated_at",
    ),
    Entity(
        "sales",
        "fx_rates",
        (F("rate_date", "date"), F("currency", "text"), F("rate_to_usd", "float")),
        ("rate_date", "currency"),
        "cursor",
        cursor="rate_date",
        allowed={"currency": CURRENCIES},
    ),
    # --- support ---------------------------------------------------------------------
    Entity(
        "support",
        "tickets",
        (
            F("ticket_id", "int"),
            F("requester_email", "text"),
            F("subject", "text"),
            F("category", "text"),
            F("channel", "text"),
            F("priority", "text"),
            F("status", "text"),
            F("assignee_id", "int", nullable=True),
            F("created_at", "timestamp"),
            F("updated_at", "timestamp"),
        ),
        ("ticket_id",),
        "cursor",
        cursor="updated_at",
        allowed={
            "category": ("billing", "delivery", "product", "account", "other"),
            "channel": ("email", "chat", "phone", "web"),
            "priority": ("low", "normal", "high", "urgent"),
            "status": TICKET_STATUSES,
        },
    ),
    Entity(
        "support",
        "ticket_events",
        (
            F("event_id", "int"),
            F("ticket_id", "int"),
            F("created_at", "timestamp"),
            F("event_type", "text"),
            F("author_role", "text"),
            F("is_public", "bool", nullable=True),
            F("new_status", "text", nullable=True),
            F("score", "text", nullable=True),
        ),
        ("event_id",),
        "cursor",
        cursor="created_at",
        allowed={
            "event_type": ("created", "comment", "status_change", "satisfaction_rated"),
            "author_role": ("agent", "end_user", "system"),
        },
    ),
    Entity(
        "support",
        "agents",
        (
            F("agent_id", "int"),
            F("agent_name", "text"),
            F("team", "text"),
            F("hourly_cost", "decimal"),
            F("currency", "text"),
            F("active", "bool"),
        ),
        ("agent_id",),
        "full",
        allowed={"currency": CURRENCIES},
    ),
    Entity(
        "support",
        "time_entries",
        (
            F("time_entry_id", "int"),
            F("ticket_id", "int"),
            F("agent_id", "int"),
            F("minutes", "int"),
            F("logged_at", "timestamp"),
        ),
        ("time_entry_id",),
        "cursor",
        cursor="logged_at",
    ),
)

# Fields holding personal data: never shown in a quarantine reason, hashed when published.
PERSONAL_FIELDS = frozenset({"email", "requester_email", "full_name", "agent_name"})
# Text a person (or a browser) wrote freely, which may name anyone: a ticket's subject, a
# refund's reason, a landing page's address with its query. Never shown in a quarantine
# reason, never published (no mart carries it either).
FREE_TEXT_FIELDS = frozenset({"subject", "reason", "landing_page"})

# What one landing sheet (mode "files") may be: its name (the sortable date decides which
# file wins, docs/sources.md) and limits that keep a load's memory bounded. A file beyond
# them stops the load naming the file; a sheet is dozens to thousands of rows.
SHEET_NAME_PATTERN = r"{entity}_(\d{{4}}-\d{{2}}-\d{{2}})[A-Za-z0-9_.-]*\.csv"
SHEET_MAX_BYTES = 16 * 2**20
SHEET_MAX_ROWS = 200_000
SHEET_MAX_LINE_BYTES = 64 * 2**10
# The largest API page accepted (a page of OPS_PAGE_SIZE rows is far smaller).
PAGE_MAX_BYTES = 64 * 2**20

BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES}
SOURCES = ("marketing", "sales", "support")
# The loaders' quarantine table in each raw_<source> schema: rows the contract rejected.
QUARANTINE_TABLE = "_quarantine"
# A loader column a vendor adapter sets to true on a row its source deleted (a Zendesk ticket
# with status "deleted"): the merge then removes that key from raw (dlt's hard_delete hint).
DELETED_COLUMN = "_deleted"


def entity(name: str) -> Entity:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None


def entities_of(source: str) -> list[Entity]:
    return [e for e in ENTITIES if e.source == source]


# HTTP endpoints of the two APIs (path below the base URL, and the key holding the rows)
API_ENDPOINTS: dict[str, tuple[str, str]] = {
    "ad_performance": ("/marketing/v1/ad_performance", "data"),
    "campaigns": ("/marketing/v1/campaigns", "data"),
    "signups": ("/marketing/v1/signups", "data"),
    "tickets": ("/support/v1/incremental/tickets", "tickets"),
    "ticket_events": ("/support/v1/incremental/ticket_events", "ticket_events"),
    "agents": ("/support/v1/agents", "agents"),
    "time_entries": ("/support/v1/incremental/time_entries", "time_entries"),
}
