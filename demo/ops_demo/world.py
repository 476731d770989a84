"""The deterministic demo world: every source of ``docs/sources.md`` filled with a simulated
company, as it stands at a clock.

    generate(world_dir, seed=42, scale=1.0, until=date(2026, 11, 22))  # a new world
    advance(world_dir, days=3)                                         # three days later
    read_info(world_dir)                                               # what is there

``until`` is the world's last day: the world holds everything that happened before its
clock, ``until + 1 day`` 00:00 UTC. The same seed, scale, start and until always give the
same files and rows, and moving the clock never rewrites history: a row that existed at
an earlier clock keeps its id, and a row whose values changed has ``updated_at`` at or
after that earlier clock (see ``simulation.py`` and ``snapshot.py`` for how).

Layout of ``world_dir``::

    world.json                    seed, scale, start, until, clock, row counts
    shop.sqlite                   the shop database (unless a shop URL is given)
    api/<entity>.parquet          the marketing and support APIs' data (served by server.py)
    landing/budget_<date>.csv     the ops team's sheets; the newest file wins per month
    landing/kpi_targets_<date>.csv

Every file is replaced atomically (temp file + rename), ``world.json`` last, so that a
server reading the directory sees either the old world or the new one.

Command line::

    python -m ops_demo.world generate --dir DIR --seed 42 --scale 1 --until 2026-11-22
    python -m ops_demo.world advance --dir DIR --days 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import sys
import tempfile
import time as clock_time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from ops_demo import snapshot
from ops_demo.genesis import epoch_seconds
from ops_demo.sheets import Sheet, build_sheets, last_planned_day
from ops_demo.simulation import simulate
from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline.contracts import ENTITIES
from ops_warehouse.pipeline.shop_schema import metadata

Progress = Callable[[str], None]
INFO_FILE = "world.json"
SQLITE_FILE = "shop.sqlite"


class WorldError(OpsWarehouseError):
    """The world directory or the generator's arguments are not usable."""


@dataclass(frozen=True)
class WorldInfo:
    seed: int
    scale: float
    start: date
    until: date
    row_counts: dict[str, int]

    @property
    def clock(self) -> datetime:
        """The moment the world stands at: the day after ``until``, 00:00 UTC."""
        return datetime.combine(self.until + timedelta(days=1), time(0), tzinfo=UTC)

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "scale": self.scale,
            "start": self.start.isoformat(),
            "until": self.until.isoformat(),
            "clock": self.clock.isoformat().replace("+00:00", "Z"),
            "row_counts": self.row_counts,
        }


def generate(
    world_dir: Path,
    *,
    seed: int = 42,
    scale: float = 1.0,
    until: date,
    history_days: int = 730,
    shop_url: str | None = None,
    progress: Progress | None = None,
) -> WorldInfo:
    """A new world of ``history_days`` days ending on ``until`` (inclusive)."""
    if history_days < 1:
        raise WorldError(f"history_days must be at least 1, not {history_days}")
    start = until - timedelta(days=history_days - 1)
    return _build(Path(world_dir), seed, scale, start, until, shop_url, progress)


def advance(
    world_dir: Path,
    *,
    days: int,
    shop_url: str | None = None,
    progress: Progress | None = None,
) -> WorldInfo:
    """The same world ``days`` later: seed, scale and start kept, ``until`` moved on."""
    if days < 1:
        raise WorldError(f"a world only moves forward: days must be at least 1, not {days}")
    info = read_info(world_dir)
    return _build(
        Path(world_dir),
        info.seed,
        info.scale,
        info.start,
        info.until + timedelta(days=days),
        shop_url,
        progress,
    )


def read_info(world_dir: Path) -> WorldInfo:
    path = Path(world_dir) / INFO_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return WorldInfo(
            seed=int(raw["seed"]),
            scale=float(raw["scale"]),
            start=date.fromisoformat(raw["start"]),
            until=date.fromisoformat(raw["until"]),
            row_counts={k: int(v) for k, v in raw["row_counts"].items()},
        )
    except FileNotFoundError:
        raise WorldError(
            f"no demo world at {world_dir}: {path} is missing. "
            "Generate one first (ops-demo generate)."
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise WorldError(
            f"{path} is not a demo world description ({exc!r}); generate the world again."
        ) from None


# --- building ---------------------------------------------------------------------------


def _build(
    world_dir: Path,
    seed: int,
    scale: float,
    start: date,
    until: date,
    shop_url: str | None,
    progress: Progress | None,
) -> WorldInfo:
    if seed < 0:
        raise WorldError(f"seed must be a non-negative integer, not {seed}")
    if not scale > 0:
        raise WorldError(f"scale must be positive, not {scale}")
    say = progress or (lambda _msg: None)
    # simulate past the clock, to the end of the last month the sheets plan for
    horizon = (last_planned_day(until) - start).days + 1
    sim = simulate(seed, scale, start, horizon, say)
    clock = epoch_seconds(until + timedelta(days=1))

    say("cutting the world at its clock")
    shop_tables = {name: cut(sim, clock) for name, cut in snapshot.SHOP_TABLES.items()}
    api_tables = {name: cut(sim, clock) for name, cut in snapshot.API_TABLES.items()}
    sheets = build_sheets(sim, start, until)
    counts = {name: t.num_rows for name, t in {**shop_tables, **api_tables}.items()}
    for kind in ("budget", "kpi_targets"):
        counts[kind] = sum(len(s.rows) for s in sheets if s.name.startswith(kind + "_"))

    # the database first: it is what most likely fails (a server that is down), and
    # then nothing else has changed yet
    world_dir.mkdir(parents=True, exist_ok=True)
    say("writing the shop database")
    if shop_url is None:
        _write_sqlite(shop_tables, world_dir / SQLITE_FILE)
    else:
        _write_database(shop_tables, shop_url)
    say("writing the API files and the landing sheets")
    for name, table in api_tables.items():
        _write_parquet(table, world_dir / "api" / f"{name}.parquet")
    _write_sheets(sheets, world_dir / "landing")

    info = WorldInfo(seed, scale, start, until, {e.name: counts[e.name] for e in ENTITIES})
    _write_atomic(
        world_dir / INFO_FILE, (json.dumps(info.to_json(), indent=2) + "\n").encode("utf-8")
    )
    return info


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_parquet(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    _write_atomic(path, sink.getvalue().to_pybytes())


def _write_sheets(sheets: list[Sheet], landing: Path) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    for sheet in sheets:
        lines = [",".join(sheet.header)] + [",".join(row) for row in sheet.rows]
        _write_atomic(landing / sheet.name, ("\n".join(lines) + "\n").encode("utf-8"))
    # sheets of the world's previous clock (an older revision) are not part of this world
    keep = {s.name for s in sheets}
    for old in [*landing.glob("budget_*.csv"), *landing.glob("kpi_targets_*.csv")]:
        if old.name not in keep:
            old.unlink()


# --- the shop database ------------------------------------------------------------------


BATCH_ROWS = 100_000


def _batches(table: pa.Table) -> list[pa.Table]:
    return [table.slice(k, BATCH_ROWS) for k in range(0, table.num_rows, BATCH_ROWS)]


def _python_rows(table: pa.Table, text_timestamps: bool) -> list[tuple]:
    """Rows as DB-API parameters. SQLite gets timestamps as the naive UTC text SQLAlchemy
    itself stores (so that SQLAlchemy reads and compares them), dates as ISO text."""
    columns = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type) and text_timestamps:
            micros = col.cast(pa.int64()).to_numpy(zero_copy_only=False).astype("M8[us]")
            text = np.char.replace(np.datetime_as_string(micros, unit="us"), "T", " ")
            columns.append(text.tolist())
        elif pa.types.is_date(field.type) and text_timestamps:
            columns.append([d.isoformat() for d in col.to_pylist()])
        else:
            columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


def _write_sqlite(tables: dict[str, pa.Table], path: Path) -> None:
    """Build the database next to its final place, then swap it in."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        engine = sa.create_engine(f"sqlite:///{tmp}")
        metadata.create_all(engine)
        engine.dispose()
        with sqlite3.connect(tmp) as conn:
            # a file nobody reads yet: no need to guard it against crashes
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            for name, table in tables.items():
                cols = ", ".join(table.column_names)
                marks = ", ".join("?" * table.num_columns)
                for batch in _batches(table):
                    conn.executemany(
                        f"INSERT INTO {name} ({cols}) VALUES ({marks})",
                        _python_rows(batch, text_timestamps=True),
                    )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_database(tables: dict[str, pa.Table], url: str) -> None:
    """Replace the shop tables in one transaction: readers see the old shop or the new."""
    try:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        engine = sa.create_engine(url)
    except Exception as exc:  # a malformed URL or a missing driver
        raise WorldError(f"cannot use the shop URL {url.split('@')[-1]!r}: {exc}") from exc
    try:
        with engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            for name, table in tables.items():
                _insert(conn, name, table)
    except sa.exc.SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise WorldError(
            f"could not write the shop database {shown}: {reason}. Check that the "
            "database server runs and the shop URL is right; the world directory "
            "and the database were left as they were."
        ) from exc
    finally:
        engine.dispose()


def _insert(conn: sa.Connection, name: str, table: pa.Table) -> None:
    driver = conn.dialect.driver
    if driver in ("psycopg", "psycopg2"):
        _copy_postgres(conn, name, table, driver)
        return
    for batch in _batches(table):
        rows = [
            dict(zip(batch.column_names, row, strict=True))
            for row in _python_rows(batch, text_timestamps=False)
        ]
        conn.execute(metadata.tables[name].insert(), rows)


def _copy_postgres(conn: sa.Connection, name: str, table: pa.Table, driver: str) -> None:
    """PostgreSQL's COPY is an order of magnitude faster than INSERTs for whole tables."""
    sql = f"COPY {name} ({', '.join(table.column_names)}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()
    try:
        if driver == "psycopg":
            with cursor.copy(sql) as copy:
                for batch in _batches(table):
                    copy.write(_copy_text(batch))
        else:
            for batch in _batches(table):
                cursor.copy_expert(sql, io.StringIO(_copy_text(batch)))
    finally:
        cursor.close()


def _copy_text(table: pa.Table) -> str:
    """The table in COPY's text format (tab separated, \\N for NULL)."""
    columns = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            micros = col.cast(pa.int64()).to_numpy(zero_copy_only=False).astype("M8[us]")
            values = [f"{v}+00" for v in np.datetime_as_string(micros, unit="us")]
        elif pa.types.is_floating(field.type) and field.name != "rate_to_usd":
            values = [f"{v:.2f}" for v in col.to_pylist()]
        else:
            values = [_copy_escape(v) for v in col.to_pylist()]
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        columns.append([r"\N" if null else v for v, null in zip(values, nulls, strict=True)])
    return "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True))


def _copy_escape(value: object) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# --- command line -----------------------------------------------------------------------


def _summary(info: WorldInfo, world_dir: Path, shop_url: str | None, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Demo world {info.start} … {info.until} (clock {info.clock:%Y-%m-%d %H:%M} UTC)"
    )
    table.add_column("source")
    table.add_column("entity")
    table.add_column("rows", justify="right")
    table.add_column("where")
    shop = str(world_dir / SQLITE_FILE) if shop_url is None else str(sa.engine.make_url(shop_url))
    for e in ENTITIES:
        if e.source == "sales":
            where = f"{shop} · table {e.name}"
        elif e.mode == "files":
            where = str(world_dir / "landing" / f"{e.name}_*.csv")
        else:
            where = str(world_dir / "api" / f"{e.name}.parquet")
        table.add_row(e.source, e.name, f"{info.row_counts[e.name]:,}", where)
    console = Console()
    console.print(table)
    console.print(
        f"seed {info.seed}, scale {info.scale:g}; done in {seconds:.1f} s "
        f"({sum(info.row_counts.values()):,} rows)."
    )


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(
        prog="python -m ops_demo.world", description="Generate or advance the demo world."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="a new world")
    gen.add_argument("--dir", type=Path, required=True)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--scale", type=float, default=1.0)
    gen.add_argument(
        "--until",
        type=date.fromisoformat,
        required=True,
        help="the last day of the world (YYYY-MM-DD)",
    )
    gen.add_argument("--history-days", type=int, default=730)
    gen.add_argument(
        "--shop-url",
        help="SQLAlchemy URL of the shop database (default: shop.sqlite in the world directory)",
    )
    adv = sub.add_parser("advance", help="move an existing world forward")
    adv.add_argument("--dir", type=Path, required=True)
    adv.add_argument("--days", type=int, required=True)
    adv.add_argument("--shop-url")
    args = parser.parse_args(argv)

    console = Console()
    started = clock_time.monotonic()
    try:
        with console.status("building the demo world …") as status:

            def report(msg: str) -> None:
                status.update(f"demo world: {msg}")

            if args.command == "generate":
                info = generate(
                    args.dir,
                    seed=args.seed,
                    scale=args.scale,
                    until=args.until,
                    history_days=args.history_days,
                    shop_url=args.shop_url,
                    progress=report,
                )
            else:
                info = advance(args.dir, days=args.days, shop_url=args.shop_url, progress=report)
    except OpsWarehouseError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    _summary(info, args.dir, args.shop_url, clock_time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
