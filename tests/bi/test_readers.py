"""Readers see every publish, whatever their pooling (ops_warehouse.warehouse.readers).

The load is Superset's: several threads of one process querying the published file at once,
one of them holding its connections open over slow queries, while the pipeline publishes
five times. Threads read through each of the module's ways in: ``connect_published`` per
query, one pooled ``published_engine`` shared by the threads, and an engine made per query
from the ``duckdb+published://`` URL with ``NullPool`` (what Superset does).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import duckdb
import pytest
import sqlalchemy as sa

from ops_warehouse.warehouse import readers
from tests.bi.conftest import GENERATION_SQL, base_orders, publish_generation

PUBLISHES = 5
# a query that starts this long after a publish has returned must read that publish: opening
# the file by ATTACH reads the file as it is, so no lag is allowed
FRESH_AFTER_S = 0.0


@dataclass(frozen=True)
class Answer:
    reader: str
    started: float
    finished: float
    generation: int


def test_plain_connect_in_one_process_keeps_the_replaced_file(bi_settings):
    """Why the module exists: in one process, ``duckdb.connect(path)`` while another
    connection to the path is open reuses the database already open, the replaced file."""
    base = base_orders(bi_settings)
    publish_generation(bi_settings, base, 1)
    path = str(bi_settings.published_path)
    holder = duckdb.connect(path, read_only=True)
    try:
        publish_generation(bi_settings, base, 2)
        with duckdb.connect(path, read_only=True) as plain:
            assert plain.execute(GENERATION_SQL).fetchone()[0] - base == 1, (
                "DuckDB no longer hands an open file to a new connection: the ATTACH "
                "workaround of readers.py may be unnecessary"
            )
        with readers.connect_published(bi_settings) as fresh:
            assert fresh.execute(GENERATION_SQL).fetchone()[0] - base == 2
    finally:
        holder.close()


def test_readers_under_concurrent_load_see_each_publish(bi_settings):
    base = base_orders(bi_settings)
    publish_generation(bi_settings, base, 0)
    url = readers.published_url(bi_settings)
    pooled = readers.published_engine(bi_settings, pool_size=3)
    answers: list[Answer] = []
    errors: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def record(reader: str, started: float, value: int) -> None:
        with lock:
            answers.append(Answer(reader, started, time.monotonic(), value - base))

    def loop(reader: str, ask) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                record(reader, started, ask())
            except Exception as exc:  # every error is a failure, reported at the end
                with lock:
                    errors.append(f"{reader}: {type(exc).__name__}: {exc}")
            time.sleep(0.01)

    def per_connection() -> int:
        with readers.connect_published(bi_settings) as con:
            return con.execute(GENERATION_SQL).fetchone()[0]

    def pooled_engine() -> int:
        with pooled.connect() as con:
            return con.execute(sa.text(GENERATION_SQL)).scalar()

    def engine_per_query() -> int:  # Superset: a new engine with NullPool for each query
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as con:
                return con.execute(sa.text(GENERATION_SQL)).scalar()
        finally:
            engine.dispose()

    def slow_chart() -> int:
        """A slow query: its connection stays open over a second of work and waiting."""
        with readers.connect_published(bi_settings) as con:
            value = con.execute(GENERATION_SQL).fetchone()[0]
            con.execute("select count(*) from range(20000000) r where r % 7 = 3").fetchone()
            time.sleep(1.0)
            return value

    threads = [
        threading.Thread(target=loop, args=(name, ask), name=name)
        for name, ask in (
            ("connect_published", per_connection),
            ("pooled engine A", pooled_engine),
            ("pooled engine B", pooled_engine),
            ("engine per query", engine_per_query),
            ("slow chart", slow_chart),
        )
    ]
    published_at: dict[int, float] = {}
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        for generation in range(1, PUBLISHES + 1):
            publish_generation(bi_settings, base, generation)
            published_at[generation] = time.monotonic()
            time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        pooled.dispose()

    assert not errors, f"{len(errors)} reader errors, first: {errors[:3]}"
    readers_seen = {a.reader for a in answers}
    assert readers_seen == {t.name for t in threads}, f"readers that answered: {readers_seen}"
    stale = []
    lags: list[float] = []
    for generation, at in published_at.items():
        after = [a for a in answers if a.started >= at + FRESH_AFTER_S]
        stale += [a for a in after if a.generation < generation]
        for reader in readers_seen:
            fresh = [
                a.finished for a in answers if a.reader == reader and a.generation >= generation
            ]
            if fresh:
                lags.append(min(fresh) - at)
    print(
        f"{len(answers)} answers over {PUBLISHES} publishes; first fresh answer per reader "
        f"after a publish: at most {max(lags):.2f} s (the slow chart's queries last ~1.5 s)"
    )
    assert not stale, (
        f"{len(stale)} answers that started after a publish read an older one: {stale[:3]}"
    )
    seen = {a.generation for a in answers}
    assert set(range(PUBLISHES + 1)) <= seen, f"generations read: {sorted(seen)}"


def test_reader_is_read_only_and_reads_nothing_but_the_published_file(bi_settings, tmp_path):
    publish_generation(bi_settings, base_orders(bi_settings), 0)
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n1\n")
    with readers.connect_published(bi_settings) as con:
        assert con.execute("select count(*) from marts.kpi_daily").fetchone()[0] > 0
        refused = {
            "write a mart": "delete from marts.kpi_daily",
            "read another file": f"select * from read_csv('{outside}')",
            "attach another database": f"attach '{tmp_path / 'other.duckdb'}' as other",
            "lift the lock": "set enable_external_access = true",
        }
        for what, statement in refused.items():
            with pytest.raises(duckdb.Error):
                con.execute(statement)
                pytest.fail(f"a reader could {what}: {statement}")


def test_missing_published_file_names_the_setting(bi_settings):
    with pytest.raises(readers.PublishedFileMissing, match="OPS_PUBLISHED_PATH"):
        readers.connect_published(bi_settings)
    with pytest.raises(sa.exc.ArgumentError, match="published file's path"):
        sa.create_engine("duckdb+published:///:memory:").connect()
