"""Ingest benchmark: initial load of all three sources at a scale, then one incremental day.

    uv run python bench/bench_ingest.py [--scale 1] [--keep]

Writes bench/results/ingest-<date>-<host>.json and prints a table. Timings are measured
here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import shutil
import socket
import time
from datetime import UTC, date, datetime, timedelta

from rich.console import Console
from rich.table import Table

from ops_demo import with_demo_tokens, world
from ops_demo.server import DemoServer
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import PROJECT_ROOT, Settings

console = Console()
UNTIL = date(2026, 11, 22)


def window_for(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=1))


def load_all(settings: Settings, day: date) -> dict:
    out = {}
    for source in ("marketing", "sales", "support"):
        t0, c0 = time.monotonic(), time.process_time()
        summary = load_source(source, window_for(day), settings=settings, run_id=f"bench__{day}")
        out[source] = {
            "seconds": round(time.monotonic() - t0, 2),
            "cpu_seconds": round(time.process_time() - c0, 2),
            "rows": summary.rows_read,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench folder")
    args = parser.parse_args()
    root = PROJECT_ROOT / "var" / "bench" / f"scale-{args.scale:g}"
    shutil.rmtree(root, ignore_errors=True)
    world_dir = root / "world"
    t0 = time.monotonic()
    with console.status(f"generating the demo world at scale {args.scale:g} …"):
        info = world.generate(world_dir, seed=42, scale=args.scale, until=UNTIL)
    gen_s = time.monotonic() - t0
    results: dict = {
        "scale": args.scale,
        "generate_seconds": round(gen_s, 1),
        "source_rows": info.row_counts,
    }
    with_demo_tokens()  # the loads below send what the demo server expects
    with DemoServer(world_dir) as server:
        settings = dataclasses.replace(
            Settings.from_env(),
            home=root / "home",
            warehouse_path=root / "home" / "working.duckdb",
            shop_db_url=f"sqlite:///{world_dir / 'shop.sqlite'}",
            marketing_api_url=server.url,
            support_api_url=server.url,
            landing_dir=world_dir / "landing",
            demo_dir=world_dir,
            dlt_dir=root / "home" / "dlt",
        )
        with console.status("initial load of all sources …"):
            results["initial"] = load_all(settings, UNTIL)
        with console.status("advancing the world one day …"):
            world.advance(world_dir, days=1)
        with console.status("incremental load of one day …"):
            results["incremental"] = load_all(settings, UNTIL + timedelta(days=1))
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    results["machine"] = {
        "host": socket.gethostname(),
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    table = Table(
        "phase",
        "source",
        "rows",
        "seconds",
        "rows/s",
        title=f"Ingest benchmark, scale {args.scale:g}",
    )
    for phase in ("initial", "incremental"):
        for source, r in results[phase].items():
            rate = r["rows"] / r["seconds"] if r["seconds"] else 0
            table.add_row(phase, source, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{rate:,.0f}")
        total = sum(r["seconds"] for r in results[phase].values())
        table.add_row(phase, "[b]all[/]", "", f"[b]{total:.1f}[/]", "")
    console.print(table)
    out = PROJECT_ROOT / "bench" / "results" / f"ingest-{date.today()}-{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    console.print(
        f"generation {gen_s:.1f} s, peak RSS {results['peak_rss_mb']} MB; results in {out}"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
