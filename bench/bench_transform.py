"""dbt benchmark: full `dbt build` at a scale on DuckDB and PostgreSQL, then one incremental day.

    uv run python bench/bench_transform.py [--scale 1] [--targets duckdb,postgres]

Writes bench/results/transform-<date>-<host>.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import socket
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from rich.console import Console
from rich.table import Table

from ops_demo import with_demo_tokens, world
from ops_demo.server import DemoServer
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.pipeline.transform import dbt_invoke
from ops_warehouse.settings import PROJECT_ROOT, Settings

console = Console()
UNTIL = date(2026, 11, 22)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def window_for(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=1))


def timed(fn, *args, **kwargs) -> float:
    t0 = time.monotonic()
    fn(*args, **kwargs)
    return round(time.monotonic() - t0, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--targets", default="duckdb,postgres")
    args = parser.parse_args()
    root = PROJECT_ROOT / "var" / "bench" / f"transform-{args.scale:g}"
    shutil.rmtree(root, ignore_errors=True)
    world_dir = root / "world"
    with console.status("generating the world …"):
        world.generate(world_dir, seed=42, scale=args.scale, until=UNTIL)
    results: dict = {"scale": args.scale}
    with_demo_tokens()  # the loads below send what the demo server expects
    with DemoServer(world_dir) as server:
        base = dataclasses.replace(
            Settings.from_env(),
            shop_db_url=f"sqlite:///{world_dir / 'shop.sqlite'}",
            marketing_api_url=server.url,
            support_api_url=server.url,
            landing_dir=world_dir / "landing",
            demo_dir=world_dir,
        )
        targets = args.targets.split(",")
        per_target = {}
        for target in targets:
            home = root / target
            s = dataclasses.replace(
                base,
                home=home,
                warehouse_path=home / "working.duckdb",
                dlt_dir=home / "dlt",
                warehouse=target,
                dbt_target=target,
            )
            if target == "postgres":
                with psycopg.connect(PG_ADMIN, autocommit=True) as con:
                    con.execute("drop database if exists ops_bench with (force)")
                    con.execute("create database ops_bench")
                s = dataclasses.replace(s, postgres_url=PG_ADMIN.rsplit("/", 1)[0] + "/ops_bench")
            per_target[target] = s
            with console.status(f"{target}: initial load …"):
                load_s = sum(
                    timed(load_source, src, window_for(UNTIL), settings=s)
                    for src in ("marketing", "sales", "support")
                )
            with console.status(f"{target}: full dbt build …"):
                full_s = timed(dbt_invoke, ["build"], settings=s, as_of=UNTIL)
            results[target] = {"initial_load_s": load_s, "dbt_build_full_s": full_s}
        with console.status("advancing the world one day …"):
            world.advance(world_dir, days=1)
        day = UNTIL + timedelta(days=1)
        for target, s in per_target.items():
            with console.status(f"{target}: incremental day …"):
                load_s = sum(
                    timed(load_source, src, window_for(day), settings=s)
                    for src in ("marketing", "sales", "support")
                )
                inc_s = timed(dbt_invoke, ["build"], settings=s, as_of=day)
            results[target].update(incremental_load_s=load_s, dbt_build_incremental_s=inc_s)
    table = Table(
        "target",
        "initial load s",
        "dbt build (full) s",
        "incremental load s",
        "dbt build (incremental) s",
        title=f"Transform benchmark, scale {args.scale:g}",
    )
    for target in targets:
        r = results[target]
        table.add_row(
            target,
            str(r["initial_load_s"]),
            str(r["dbt_build_full_s"]),
            str(r["incremental_load_s"]),
            str(r["dbt_build_incremental_s"]),
        )
    console.print(table)
    out = (
        PROJECT_ROOT / "bench" / "results" / f"transform-{date.today()}-{socket.gethostname()}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    console.print(f"results in {out}")


if __name__ == "__main__":
    main()
