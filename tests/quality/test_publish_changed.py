"""Publishing only the marts whose rows changed (DuckDB and PostgreSQL): the first publish
writes every mart, a later one rewrites exactly the changed marts and keeps the others, a
schema change republishes, and the published marts always equal the working ones.

A kept mart is recognised by a probe: a row of ``dim_date`` altered in the published copy
itself survives a publish that keeps that mart and is gone after one that rewrites it."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess

import duckdb
import pytest

from ops_warehouse.pipeline import audit
from ops_warehouse.warehouse import publish
from ops_warehouse.warehouse.engines import pg_connect
from tests.conftest import drop_pg_database
from tests.quality.wap import run, working_copy

CHANGED = "kpi_daily"
PROBED = "dim_date"
PROBE = (
    "update marts.dim_date set year = year + 1000 "
    "where date_day = (select min(date_day) from marts.dim_date)"
)
PROBE_COUNT = "select count(*) from marts.dim_date where year > 3000"
CHANGE = (
    "update marts.kpi_daily set net_revenue = net_revenue + 1 "
    "where date_day = (select max(date_day) from marts.kpi_daily)"
)


def _publish(settings, run_id: str) -> publish.Published:
    this = run(run_id)
    audit.record_run_start(settings, this)
    return publish.publish_marts(settings, this)


# --- DuckDB ----------------------------------------------------------------------------


@pytest.fixture
def settings(duckdb_marts, tmp_path):
    return working_copy(duckdb_marts, tmp_path / "home")


def _working_marts(settings) -> list[str]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return sorted(
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        )


def _differences(settings) -> dict[str, int]:
    """Per mart: the rows in one warehouse and not the other (both ways, as multisets), and
    the marts missing from either side; only non-zero entries."""
    with duckdb.connect() as con:
        con.execute(f"attach '{settings.warehouse_path}' as w (read_only true)")
        con.execute(f"attach '{settings.published_path}' as p (read_only true)")
        tables = {
            catalog: {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables "
                    "where table_catalog = ? and table_schema = 'marts'",
                    [catalog],
                ).fetchall()
            }
            for catalog in ("w", "p")
        }
        out = {t: -1 for t in tables["w"] ^ tables["p"]}
        for t in tables["w"] & tables["p"]:
            columns = {
                catalog: con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_catalog = ? and table_schema = 'marts' and table_name = ? "
                    "order by ordinal_position",
                    [catalog, t],
                ).fetchall()
                for catalog in ("w", "p")
            }
            if columns["w"] != columns["p"]:
                out[t] = -2
                continue
            (n,) = con.execute(
                f"select count(*) from ((select * from w.marts.{t} except all "
                f"select * from p.marts.{t}) union all (select * from p.marts.{t} "
                f"except all select * from w.marts.{t}))"
            ).fetchone()
            if n:
                out[t] = n
    return out


def _published(settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _probe(settings) -> None:
    with duckdb.connect(str(settings.published_path)) as con:
        con.execute(PROBE)


def test_duckdb_only_the_changed_mart_is_rewritten(settings):
    marts = _working_marts(settings)
    first = _publish(settings, "first")
    assert first.whole and sorted(first.republished) == marts and first.kept == ()
    assert _differences(settings) == {}
    assert sorted(_published(settings, "select table_name from audit.published_marts")) == [
        (m,) for m in marts
    ]

    _probe(settings)
    unchanged = _publish(settings, "unchanged")
    assert (unchanged.whole, unchanged.republished) == (False, ())
    assert sorted(unchanged.kept) == marts
    assert _published(settings, PROBE_COUNT) == [(1,)], "a kept mart was written again"
    assert _differences(settings) == {PROBED: 2}, "only the probe differs"

    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(CHANGE)
    changed = _publish(settings, "changed")
    assert changed.republished == (CHANGED,)
    assert sorted(changed.kept) == sorted(set(marts) - {CHANGED})
    assert _published(settings, PROBE_COUNT) == [(1,)]
    assert _differences(settings) == {PROBED: 2}, f"{CHANGED} is published as it is now"
    assert dict(_published(settings, "select table_name, run_id from audit.published_marts")) == {
        m: "changed" if m == CHANGED else "first" for m in marts
    }
    assert _published(
        settings, "select status from audit.pipeline_runs where run_id = 'changed'"
    ) == [("published",)]

    # the working dim_date changed too: the probe is overwritten with the working rows
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "update marts.dim_date set is_weekend = not is_weekend "
            "where date_day = (select max(date_day) from marts.dim_date)"
        )
    again = _publish(settings, "dim_date")
    assert again.republished == (PROBED,)
    assert _published(settings, PROBE_COUNT) == [(0,)]
    assert _differences(settings) == {}


def test_duckdb_a_changed_mart_gets_only_its_changed_rows(settings, monkeypatch):
    """A changed mart whose columns did not change is not written whole: the rows that
    changed or went are deleted from the copy, the changed and new ones inserted (here 2 out
    and 2 in, of fct_orders' thousands). A mart with two equal rows cannot be diffed by row
    hash and is written whole. Either way the published marts equal the working ones."""
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create table marts.zz_plain as select range % 3 as n from range(6)")
        (rows,) = con.execute("select count(*) from marts.fct_orders").fetchone()
        gone, edited = (
            r[0] for r in con.execute("select order_id from marts.fct_orders limit 2").fetchall()
        )
    _publish(settings, "first")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("delete from marts.fct_orders where order_id = ?", [gone])
        con.execute(
            "update marts.fct_orders set net_revenue = net_revenue + 1 where order_id = ?",
            [edited],
        )
        con.execute(
            "insert into marts.fct_orders select * replace ('new-order' as order_id) "
            "from marts.fct_orders where order_id = ?",
            [edited],
        )
        con.execute("insert into marts.zz_plain values (1)")
    diffed = {}
    replace = publish._replace_changed_rows

    def spy(con, table, *rest):
        diffed[table] = replace(con, table, *rest)
        return diffed[table]

    monkeypatch.setattr(publish, "_replace_changed_rows", spy)
    changed = _publish(settings, "changed")
    assert sorted(changed.republished) == ["fct_orders", "zz_plain"]
    assert rows > 100
    # out: the deleted order and the edited one's old row; in: its new row and the new order
    assert diffed == {"fct_orders": (2, 2), "zz_plain": None}
    assert _differences(settings) == {}
    assert _published(settings, "select count(*) from marts.zz_plain") == [(7,)]


def test_duckdb_schema_changes_and_removed_marts_republish(settings):
    _publish(settings, "first")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        # same values, other column name: the rows' hash alone would not see it
        con.execute("alter table marts.dim_campaigns rename column channel to channel_name")
        con.execute("alter table marts.retention_cohorts add column note varchar")
    renamed = _publish(settings, "renamed")
    assert sorted(renamed.republished) == ["dim_campaigns", "retention_cohorts"]
    assert _differences(settings) == {}
    assert ("channel_name",) in _published(
        settings,
        "select column_name from information_schema.columns where table_name = 'dim_campaigns'",
    )

    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("drop table marts.churn_drivers")
    dropped = _publish(settings, "dropped")
    assert (dropped.republished, dropped.removed) == ((), ("churn_drivers",))
    assert _differences(settings) == {}
    assert ("churn_drivers",) not in _published(
        settings, "select table_name from audit.published_marts"
    )


def test_duckdb_a_reader_of_the_old_file_keeps_its_rows(settings):
    _publish(settings, "first")
    held = duckdb.connect(str(settings.published_path), read_only=True)
    before = held.execute("select sum(net_revenue) from marts.kpi_daily").fetchone()
    held_file = settings.published_path.open("rb")
    held_bytes = hashlib.sha256(held_file.read()).hexdigest()
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("update marts.kpi_daily set net_revenue = net_revenue + 1")
        after = con.execute("select sum(net_revenue) from marts.kpi_daily").fetchone()
    assert after != before
    assert _publish(settings, "second").republished == (CHANGED,)
    assert held.execute("select sum(net_revenue) from marts.kpi_daily").fetchone() == before
    held.close()
    held_file.seek(0)
    assert hashlib.sha256(held_file.read()).hexdigest() == held_bytes, (
        "the publish wrote into the file a reader had open"
    )
    held_file.close()
    assert _published(settings, "select sum(net_revenue) from marts.kpi_daily") == [after]


def test_duckdb_another_storage_version_or_no_fingerprints_writes_the_whole_file(settings):
    _publish(settings, "first")
    with duckdb.connect(str(settings.published_path)) as con:
        con.execute("drop table audit.published_marts")
    assert _publish(settings, "no_fingerprints").whole
    newer = dataclasses.replace(settings, published_storage_version="v1.2.0")
    assert _publish(newer, "newer").whole
    assert _published(
        newer, "select tags['storage_version'] from duckdb_databases() where not internal"
    ) == [("v1.2.0+",)]
    same = _publish(newer, "same")
    assert (same.whole, same.republished) == (False, ())
    assert _differences(settings) == {}


def test_duckdb_the_file_does_not_grow_without_bound(settings):
    """Each publish rewrites the largest mart: the file stays within twice its contents."""
    _publish(settings, "first")
    full_size = settings.published_path.stat().st_size
    sizes = []
    for n in range(8):
        with duckdb.connect(str(settings.warehouse_path)) as con:
            con.execute("update marts.fct_orders set net_revenue = net_revenue + 1")
        assert _publish(settings, f"n{n}").republished == ("fct_orders",)
        sizes.append(settings.published_path.stat().st_size)
    print(f"full write {full_size} bytes, then {sizes}")
    assert max(sizes) <= 2 * full_size + 2 * 262144
    assert _differences(settings) == {}


def test_duckdb_a_file_mostly_free_is_written_whole(settings):
    """A dropped mart leaves free blocks in the copy (DuckDB reuses them, it does not give
    them back): once they outnumber the used ones, the next publish writes the file anew,
    and it shrinks."""
    with duckdb.connect(str(settings.warehouse_path)) as con:
        # a large mart written first, so that its blocks are not the file's last ones
        con.execute(
            "create table marts.aa_large as select range as id, md5(range::varchar) as h "
            "from range(400000)"
        )
    _publish(settings, "first")
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("drop table marts.aa_large")
    dropped = _publish(settings, "dropped")
    assert (dropped.whole, dropped.republished, dropped.removed) == (False, (), ("aa_large",))
    ((used, free),) = _published(
        settings, "select used_blocks, free_blocks from pragma_database_size()"
    )
    assert free > used, "the dropped mart's blocks are free in the copy"
    size = settings.published_path.stat().st_size
    again = _publish(settings, "again")
    assert again.whole and sorted(again.republished) == _working_marts(settings)
    assert settings.published_path.stat().st_size < size / 2
    assert _differences(settings) == {}


# --- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
def pg_settings(postgres_marts):
    """A private copy of the built working database and a published database of its own."""
    from sqlalchemy.engine import make_url

    base = make_url(postgres_marts.postgres_url).database
    working, published = f"{base}_changed", f"{base}_changed_published"
    drop_pg_database(working)
    drop_pg_database(published)
    with pg_connect(postgres_marts.postgres_url.rsplit("/", 1)[0] + "/postgres") as admin:
        admin.autocommit = True
        admin.execute(f'create database "{working}"')
    # a dump, not `create database … template`: that fails while any other session (a pooled
    # connection of an earlier test) is connected to the built database
    url = make_url(postgres_marts.postgres_url)
    server = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username]
    dump = subprocess.run(
        ["pg_dump", *server, "--no-owner", "--no-privileges", base],
        capture_output=True,
        check=True,
    )
    subprocess.run(
        ["psql", *server, "-q", "-v", "ON_ERROR_STOP=1", "-d", working],
        input=dump.stdout,
        capture_output=True,
        check=True,
    )
    root = postgres_marts.postgres_url.rsplit("/", 1)[0]
    yield dataclasses.replace(
        postgres_marts,
        postgres_url=f"{root}/{working}",
        published_postgres_url=f"{root}/{published}",
    )
    drop_pg_database(working)
    drop_pg_database(published)


def _pg_marts(url: str) -> dict[str, tuple[list, str]]:
    """Every mart's columns and a digest of its sorted rows."""
    with pg_connect(url) as con:
        con.execute("set timezone = 'UTC'")
        out = {}
        for (table,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall():
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'marts' and table_name = %s order by ordinal_position",
                [table],
            ).fetchall()
            (digest,) = con.execute(
                f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                f'from marts."{table}" t'
            ).fetchone()
            out[table] = (columns, digest)
    return out


def test_postgres_only_the_changed_mart_is_streamed(pg_settings):
    settings = pg_settings
    working = _pg_marts(settings.postgres_url)
    first = _publish(settings, "pg_first")
    assert first.whole and sorted(first.republished) == sorted(working)
    assert _pg_marts(settings.published_postgres_url) == working

    with pg_connect(settings.published_postgres_url) as con:
        con.execute(PROBE)
        con.commit()
    unchanged = _publish(settings, "pg_unchanged")
    assert (unchanged.whole, unchanged.republished) == (False, ())
    assert sorted(unchanged.kept) == sorted(working)
    published = _pg_marts(settings.published_postgres_url)
    assert {t for t in working if published[t] != working[t]} == {PROBED}, (
        "a kept mart is copied from the published database, probe included"
    )

    with pg_connect(settings.postgres_url) as con:
        con.execute(CHANGE)
        # a json column: no 64-bit hash for it, this mart is fingerprinted by md5 of its rows
        con.execute("alter table marts.retention_cohorts add column note json")
        con.execute("update marts.retention_cohorts set note = '{\"n\": 1}'")
        con.execute("alter table marts.dim_campaigns rename column channel to channel_name")
        con.commit()
    changed = _publish(settings, "pg_changed")
    assert sorted(changed.republished) == sorted([CHANGED, "retention_cohorts", "dim_campaigns"])
    working = _pg_marts(settings.postgres_url)
    published = _pg_marts(settings.published_postgres_url)
    assert set(published) == set(working)
    assert {t for t in working if published[t] != working[t]} == {PROBED}
    with pg_connect(settings.published_postgres_url) as con:
        assert con.execute(PROBE_COUNT).fetchone() == (1,)
        runs = dict(con.execute("select table_name, run_id from audit.published_marts"))
        assert con.execute(
            "select status from audit.pipeline_runs where run_id = 'pg_changed'"
        ).fetchone() == ("published",)
    assert runs == {t: "pg_changed" if t in changed.republished else "pg_first" for t in working}

    with pg_connect(settings.postgres_url) as con:  # the working dim_date changes too
        con.execute(
            "update marts.dim_date set is_weekend = not is_weekend "
            "where date_day = (select max(date_day) from marts.dim_date)"
        )
        con.commit()
    assert _publish(settings, "pg_dim_date").republished == (PROBED,)
    assert _pg_marts(settings.published_postgres_url) == _pg_marts(settings.postgres_url)
