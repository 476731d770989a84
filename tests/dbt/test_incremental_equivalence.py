"""Ten consecutive incremental daily runs give exactly the marts (and the incremental staging
and intermediate tables) of one full refresh: the weekly full build equals the chain of
incremental days before it (pipeline/run_mode.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.transform import dbt_invoke
from ops_warehouse.warehouse.queries import query
from tests.conftest import make_settings
from tests.dbt.conftest import MARTS_HISTORY_DAYS, MARTS_UNTIL
from tests.helpers import MART_TABLES, day_window, frames_differ, read_table

DAYS = 10
# the models that are incremental below the marts (dbt_project/macros/incremental_staging.sql)
INCREMENTAL_BELOW_MARTS = [
    ("staging", "stg_sales__orders"),
    ("staging", "stg_sales__order_items"),
    ("staging", "stg_sales__refunds"),
    ("staging", "stg_sales__customers"),
    ("staging", "stg_support__tickets"),
    ("staging", "stg_support__ticket_events"),
    ("staging", "stg_support__time_entries"),
    ("staging", "stg_marketing__signups"),
    ("intermediate", "int_orders_converted"),
    ("intermediate", "int_ticket_events_summarised"),
    ("intermediate", "int_tickets_status_periods"),
]
# load times that are not bookkeeping by name (no leading underscore): the two warehouses
# loaded the same rows at different moments
LOAD_TIMES = ["last_event_loaded_at"]


def _read(settings, schema, table):
    frame = read_table(settings, schema, table)
    return frame.drop(columns=[c for c in LOAD_TIMES if c in frame.columns])


# dbt's data and unit tests run in the other dbt test modules; here only the models matter.
NO_TESTS = ["--exclude-resource-type", "test", "unit_test"]


def _load(settings, day):
    for source in ("marketing", "sales", "support"):
        load_source(source, day_window(day), settings=settings, run_id=f"test__{day}")


# what the first incremental day after the backfill reads: each staging model, the keys of the
# day's load (model, key, raw table); each incremental intermediate model rewrites only the rows
# its changed keys give (their _inputs_loaded_at is the build's)
FIRST_DAY_STAGING = [
    ("stg_sales__order_items", "order_item_id", "raw_sales.order_items"),
    ("stg_support__ticket_events", "event_id", "raw_support.ticket_events"),
]
FIRST_DAY_INTERMEDIATE = [
    "int_orders_converted",
    "int_ticket_events_summarised",
    "int_tickets_status_periods",
]


def _staging_reads(settings, day) -> dict[str, tuple[int, int]]:
    """Per staging model of FIRST_DAY_STAGING, the rows its compiled incremental select returns
    for `day` (before the day's build), beside the keys of the day's load in raw."""
    compiled = settings.home / "dbt" / "target" / "compiled" / "ops_warehouse" / "models"
    names = " ".join(model for model, _, _ in FIRST_DAY_STAGING)
    dbt_invoke(["compile", "--select", names], settings=settings, as_of=day)
    reads = {}
    for model, key, raw in FIRST_DAY_STAGING:
        sql = next(compiled.rglob(f"{model}.sql")).read_text()
        (read,) = query(settings, f"select count(*) from ({sql})")[0]
        (day_keys,) = query(
            settings,
            f"select count(distinct {key}) from {raw} where _load_id = ?",
            [f"test__{day}"],
        )[0]
        reads[model] = (read, day_keys)
    return reads


def _intermediate_rewrites(settings) -> dict[str, tuple[int, int]]:
    """Per model of FIRST_DAY_INTERMEDIATE, the rows the last build wrote (those carrying its
    watermark) beside all the rows the model holds."""
    return {
        model: query(
            settings,
            "select count(*) filter (where _inputs_loaded_at = (select max(_inputs_loaded_at)"
            f" from intermediate.{model})), count(*) from intermediate.{model}",
        )[0]
        for model in FIRST_DAY_INTERMEDIATE
    }


@pytest.fixture(scope="module")
def incremental_and_full(tmp_path_factory):
    from ops_demo import world
    from ops_demo.server import DemoServer

    root = tmp_path_factory.mktemp("incremental")
    world_dir = root / "world"
    first_day = MARTS_UNTIL - timedelta(days=DAYS)
    world.generate(
        world_dir, seed=11, scale=0.03, until=first_day, history_days=MARTS_HISTORY_DAYS - DAYS
    )
    with DemoServer(world_dir, marketing_token="m-token", support_token="s-token") as server:
        inc = make_settings(root / "inc", world_dir, server.url)
        _load(inc, first_day)
        dbt_invoke(["build", *NO_TESTS], settings=inc, as_of=first_day)
        first_reads = {}
        for offset in range(1, DAYS + 1):
            day = first_day + timedelta(days=offset)
            world.advance(world_dir, days=1)
            _load(inc, day)
            if offset == 1:
                first_reads = _staging_reads(inc, day)
            dbt_invoke(["run"], settings=inc, as_of=day)
            if offset == 1:
                first_reads |= _intermediate_rewrites(inc)
        full = make_settings(root / "full", world_dir, server.url)
        _load(full, MARTS_UNTIL)
        dbt_invoke(["build", "--full-refresh", *NO_TESTS], settings=full, as_of=MARTS_UNTIL)
    return inc, full, first_reads


@pytest.mark.parametrize(
    ("schema", "table"), [("marts", t) for t in MART_TABLES] + INCREMENTAL_BELOW_MARTS
)
def test_incremental_runs_equal_full_refresh(incremental_and_full, schema, table):
    inc, full, _ = incremental_and_full
    a, b = _read(inc, schema, table), _read(full, schema, table)
    assert len(b) > 0
    difference = frames_differ(a, b)
    assert difference is None, f"{schema}.{table}: {difference}"


def test_the_first_incremental_day_reads_the_days_keys_not_the_backfill(incremental_and_full):
    """The backfill is one load, so every raw row carries its stamp; the first incremental
    day must not read that load again (macros/incremental_staging.sql)."""
    _, _, reads = incremental_and_full
    for model, _, _ in FIRST_DAY_STAGING:
        read, day_keys = reads[model]
        # one row per key of the day's load: the staging select reads those keys only
        assert read == day_keys > 0, f"{model}: read {read} keys, the day's load has {day_keys}"
    for model in FIRST_DAY_INTERMEDIATE:
        # the day's orders or tickets and the ones it touched: far fewer than the history
        rewritten, held = reads[model]
        assert 0 < rewritten < held / 4, f"{model}: rewrote {rewritten} of {held} rows"


# Late corrections an incremental day must carry into every row they restate, as a full build
# does: a product's cost corrected (every order of it, however old), an old fx rate corrected
# (the orders of the days it covers), a refund made long ago and loaded today, and a ticket
# reopened by an event dated before the last build.
CORRECTIONS = [
    """update raw_sales.products set unit_cost = unit_cost + 1.25,
       updated_at = updated_at + interval 1 second,
       _loaded_at = now(), _load_id = 'late'
       where product_id = (select min(product_id) from raw_sales.products)""",
    """update raw_sales.fx_rates set rate_to_usd = rate_to_usd * 1.02, _loaded_at = now(),
       _load_id = 'late'
       where currency = 'EUR' and rate_date = (
           select min(rate_date) + 3 from raw_sales.fx_rates where currency = 'EUR')""",
    """insert into raw_sales.refunds
       select * replace ('late-refund' as refund_id, 7.50 as amount,
                         refunded_at - interval 2 day as refunded_at,
                         updated_at + interval 1 second as updated_at,
                         now() as _loaded_at, 'late' as _load_id)
       from raw_sales.refunds order by refunded_at limit 1""",
    """insert into raw_support.ticket_events
       select * replace ((select max(event_id) + 1 from raw_support.ticket_events) as event_id,
                         created_at + interval 1 minute as created_at,
                         'status_change' as event_type, 'open' as new_status,
                         'end_user' as author_role, now() as _loaded_at, 'late' as _load_id)
       from raw_support.ticket_events
       where event_type = 'status_change' and new_status = 'solved'
       order by created_at limit 1""",
]


# Raw rows removed by the paths that remove them (an orphan swept into quarantine, a ticket
# deleted at the source), each recording its removal in audit.raw_removals as those paths do:
# an order with its items, and a ticket.
REMOVALS = {
    "raw_sales.order_items": """delete from raw_sales.order_items where order_id =
       (select min(order_id) from raw_sales.orders)""",
    "raw_sales.orders": "delete from raw_sales.orders where order_id = "
    "(select min(order_id) from raw_sales.orders)",
    "raw_support.tickets": "delete from raw_support.tickets where ticket_id = "
    "(select min(ticket_id) from raw_support.tickets)",
}


def _copy_warehouse(settings, home):
    import shutil

    copy = make_settings(home, home.parent / "world", "http://127.0.0.1:1")
    copy.warehouse_path.parent.mkdir(parents=True)
    shutil.copy(settings.warehouse_path, copy.warehouse_path)
    return copy


def _change_raw(settings, corrections: list[str], record_removals: bool) -> None:
    """Apply the late corrections and the removals to raw, recording the removals or not."""
    from ops_warehouse.pipeline import audit
    from ops_warehouse.warehouse.engines import engine

    with engine(settings).transaction() as db:
        for statement in corrections:
            db.execute(statement)
        db.execute(f"create schema if not exists {audit.SCHEMA}")
        db.execute(audit.raw_removals_ddl())
        for raw_table, statement in REMOVALS.items():
            db.execute(statement)
            if record_removals:
                audit.record_raw_removal(db, raw_table, None, "test")


@pytest.fixture(scope="module")
def corrected(incremental_and_full):
    """The incremental warehouse after the late corrections and the recorded removals, then
    one more incremental run, beside a copy of it given the same changes and a full refresh,
    and a copy given the removals without recording them, then an incremental run of
    stg_sales__orders (the one model the negative check reads)."""
    inc, _, _ = incremental_and_full
    (order_id,) = query(inc, "select min(order_id) from raw_sales.orders")[0]
    (ticket_id,) = query(inc, "select min(ticket_id) from raw_support.tickets")[0]
    before = read_table(inc, "marts", "fct_orders")
    root = inc.home.parent / "corrected"
    full, unrecorded = (_copy_warehouse(inc, root / name) for name in ("full", "unrecorded"))
    _change_raw(inc, CORRECTIONS, record_removals=True)
    _change_raw(full, CORRECTIONS, record_removals=False)
    _change_raw(unrecorded, [], record_removals=False)
    dbt_invoke(["run"], settings=inc, as_of=MARTS_UNTIL)
    dbt_invoke(["run", "--full-refresh"], settings=full, as_of=MARTS_UNTIL)
    dbt_invoke(["run", "--select", "stg_sales__orders"], settings=unrecorded, as_of=MARTS_UNTIL)
    return inc, full, unrecorded, before, order_id, ticket_id


def test_late_corrections_and_removals_restate_what_a_full_build_restates(corrected):
    inc, full, _, before, order_id, _ = corrected
    # the corrections reach the published numbers of the orders kept (else this test could
    # not fail for them)
    kept = before[before["order_id"] != order_id].reset_index(drop=True)
    assert frames_differ(kept, read_table(inc, "marts", "fct_orders")) is not None
    for schema, table in [("marts", t) for t in MART_TABLES] + INCREMENTAL_BELOW_MARTS:
        a, b = _read(inc, schema, table), _read(full, schema, table)
        difference = frames_differ(a, b)
        assert difference is None, (
            f"after late corrections and removals, {schema}.{table}: {difference}"
        )


def test_recorded_raw_removals_leave_staging_and_marts(corrected):
    inc, _, _, _, order_id, ticket_id = corrected
    for schema, table, key, value in [
        ("staging", "stg_sales__orders", "order_id", order_id),
        ("staging", "stg_sales__order_items", "order_id", order_id),
        ("staging", "stg_support__tickets", "ticket_id", ticket_id),
        ("marts", "fct_orders", "order_id", order_id),
        ("marts", "fct_tickets", "ticket_id", ticket_id),
    ]:
        sql = f"select count(*) from {schema}.{table} where {key} = ?"
        assert query(inc, sql, [value])[0][0] == 0, f"{schema}.{table} kept {value}"
    # each removal applied by its staging build, in the same transaction
    pending = query(inc, "select raw_table from audit.raw_removals where applied_at is null")
    assert pending == []
    assert len(query(inc, "select * from audit.raw_removals")) == len(REMOVALS)


def test_staging_looks_for_keys_gone_from_raw_only_after_a_recorded_removal(corrected):
    """Without a recorded removal an incremental day skips the whole-table anti-join: raw rows
    deleted by hand stay in staging until the weekly full build (docs/decisions.md)."""
    _, full, unrecorded, _, order_id, _ = corrected
    sql = "select count(*) from staging.stg_sales__orders where order_id = ?"
    assert query(unrecorded, sql, [order_id])[0][0] == 1
    assert query(full, sql, [order_id])[0][0] == 0
