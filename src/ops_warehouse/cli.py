"""`ops`: the project's command line.

ops load SOURCE --date D      load one source for day D, without Airflow
ops transform                 dbt build on the working warehouse
ops rebuild [--force]         recreate the raw layer from the raw archive
ops airflow-init              metadata DB + writer pool for the embedded Airflow
ops settings                  the effective settings (secrets masked)
ops bi-reader                 PostgreSQL: create/refresh the read-only bi_reader role
ops report weekly|daily       render (and with --send, email) a report from the published marts

The demo world (`make demo`, `make up`) has its own command, `ops-demo`, in the separate
package ops_demo (demo/ in the repository), which the product does not contain.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from rich.console import Console
from rich.table import Table

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.redact import install_log_redaction, redact, redact_exception
from ops_warehouse.settings import get_settings

console = Console()


def _day(value: str) -> date:
    return date.fromisoformat(value)


Command = Callable[[argparse.Namespace], None]


def writes_warehouse(command: Command) -> Command:
    """For a command that writes the working warehouse: make sure the working database
    exists (created, or an error saying how), then hold the writer lock for the whole
    command, so that a second writer stops at once naming this one."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> None:
        from ops_warehouse.warehouse.databases import ensure_working_database
        from ops_warehouse.warehouse.writer_lock import writer_lock

        settings = get_settings()
        ensure_working_database(settings)
        with writer_lock(settings):
            command(args)

    return run


def cmd_settings(args: argparse.Namespace) -> None:
    table = Table("setting", "value", title="Effective settings")
    for name, value in get_settings().redacted().items():
        table.add_row(name, value)
    console.print(table)


@writes_warehouse
def cmd_load(args: argparse.Namespace) -> None:
    from ops_warehouse.pipeline.loading import load_source
    from ops_warehouse.pipeline.sources.window import Window
    from ops_warehouse.warehouse.databases import working_location
    from ops_warehouse.warehouse.engines import engine

    day = args.date or get_settings().demo_until
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    window = Window.of(start, start + timedelta(days=1))
    sources = ["marketing", "sales", "support"] if args.source == "all" else [args.source]
    table = Table("source", "entity", "rows read", "rows in raw", title=f"Loaded {day}")
    # the working file open once for the command, not at each read (engines.DuckDB.held)
    with engine(get_settings()).held():
        for source in sources:
            with console.status(f"loading {source} for {day} …"):
                summary = load_source(source, window, run_id=f"cli__{day}")
            for name, stats in summary.entities.items():
                table.add_row(source, name, f"{stats.rows_read:,}", f"{stats.raw_rows:,}")
    console.print(table)
    console.print(f"Warehouse: {working_location(get_settings())}")


@writes_warehouse
def cmd_replay(args: argparse.Namespace) -> None:
    from ops_warehouse.pipeline.quarantine import replay

    summary = replay(get_settings(), source=args.source, entity=args.entity)
    table = Table("entity", "replayed into raw", "still quarantined", title="Quarantine replay")
    for name, n in summary.replayed.items():
        table.add_row(name, f"{n:,}", f"{summary.still_quarantined[name]:,}")
    console.print(table if summary.replayed else "Nothing in quarantine.")


def cmd_report(args: argparse.Namespace) -> None:
    from ops_warehouse.reports.build import run_report

    s = get_settings()
    key = args.week if args.kind == "weekly" else args.day
    if (args.week and args.kind != "weekly") or (args.day and args.kind != "daily"):
        raise OpsWarehouseError(
            "--week goes with `ops report weekly`, --day with `ops report daily`"
        )
    with console.status(f"{args.kind} report …") as st:
        run = run_report(
            s,
            args.kind,
            period_key=key,
            language=args.language,
            send=args.send,
            progress=lambda step: st.update(f"{args.kind} report: {step} …"),
        )
    out = run.summary()
    table = Table(
        "", "", title=f"{out['report'].capitalize()} report {out['period']}", show_header=False
    )
    table.add_row("as of", out["as_of_date"] + (" [red](stale)[/]" if out["stale"] else ""))
    table.add_row("language", out["language"])
    table.add_row("HTML", out["html"])
    table.add_row("PDF", out["pdf"])
    table.add_row("scorecard CSV", out["csv"])
    table.add_row("archive index", out["index"])
    table.add_row("delivery", out["delivery_summary"])
    table.add_row("time", ", ".join(f"{k} {v:.1f} s" for k, v in out["seconds"].items()))
    console.print(table)
    if out["stale"]:
        console.print(f"[red]{out['stale']}[/]")
    console.print("What needs attention:" if out["attention"] else "Nothing needs attention.")
    for sentence in out["attention"]:
        console.print(f"  • {sentence}")
    console.print(
        f"Open {out['html']} in a browser{'' if args.send else ', or add --send to email it'}."
    )


def cmd_docs(args: argparse.Namespace) -> None:
    from ops_warehouse.pipeline.transform import dbt_invoke

    s = get_settings()
    with console.status("dbt docs generate (catalog of every model and column) …"):
        dbt_invoke(["docs", "generate", "--static"])
    site = s.home / "dbt" / "target" / "static_index.html"
    console.print(f"dbt documentation (one self-contained page): {site}")


@writes_warehouse
def cmd_rebuild(args: argparse.Namespace) -> None:
    from ops_warehouse.pipeline.rebuild import SOURCES, rebuild
    from ops_warehouse.warehouse.databases import working_location

    s = get_settings()
    sources = SOURCES if args.source == "all" else (args.source,)
    console.print(
        f"Rebuilding the raw layer of {working_location(s)} from the raw archive "
        f"{s.raw_archive_url} …"
    )
    results = rebuild(
        s, sources=sources, force=args.force, progress=lambda line: console.print(f"  {line}")
    )
    table = Table(
        "source",
        "entity",
        "archived loads",
        "rows archived",
        "rows in raw",
        "quarantined",
        title="Raw rebuilt from the archive",
    )
    for result in results:
        for name, e in result.entities.items():
            table.add_row(
                result.source,
                name,
                f"{e.loads:,}",
                f"{e.rows_archived:,}",
                f"{e.raw_rows:,}",
                f"{e.quarantined:,}",
            )
    console.print(table)
    seconds = sum(r.seconds for r in results)
    console.print(
        f"[green]Raw rebuilt[/] in {seconds:.0f} s; the cursors are restored, so the next "
        "load continues where the archive ends."
    )
    console.print(
        "Next: `ops transform` (or the transform DAG) builds the models with dbt and runs "
        "the checks on the rebuilt raw layer, as after any load."
    )


@writes_warehouse
def cmd_transform(args: argparse.Namespace) -> None:
    from ops_warehouse.pipeline.transform import dbt_invoke
    from ops_warehouse.warehouse.engines import engine

    engine(get_settings()).prepare_build()
    dbt_invoke(["build", *(["--select", args.select] if args.select else [])])
    console.print(f"[green]dbt build passed[/] on {get_settings().dbt_target}")


def cmd_airflow_init(args: argparse.Namespace) -> None:
    from ops_warehouse.airflow.environment import init_airflow

    with console.status("migrating the Airflow metadata DB and creating the writer pool …"):
        init_airflow(get_settings())
    console.print("Airflow metadata DB ready; pool warehouse_writer has 1 slot.")


def cmd_bi_reader(args: argparse.Namespace) -> None:
    from ops_warehouse.warehouse.bi_access import setup_bi_reader

    status = setup_bi_reader(get_settings())
    verb = "created" if status.created else "refreshed"
    console.print(
        f"Role {status.role} {verb}: may connect to {status.database} and SELECT "
        f"{len(status.tables)} table(s) of marts, nothing else."
    )
    if not status.tables:
        console.print("No marts published yet: the next publish grants them.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("settings", help="print the effective settings").set_defaults(func=cmd_settings)

    p = sub.add_parser("load", help="load a source for one day (no Airflow)")
    p.add_argument("source", choices=["marketing", "sales", "support", "all"])
    p.add_argument("--date", type=_day, help="the day to load (default: OPS_DEMO_UNTIL)")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("replay", help="re-process quarantined rows after a fix")
    p.add_argument("--source", choices=["marketing", "sales", "support"])
    p.add_argument("--entity")
    p.set_defaults(func=cmd_replay)

    sub.add_parser("docs", help="generate the dbt documentation site").set_defaults(func=cmd_docs)

    p = sub.add_parser("report", help="render a report from the published warehouse")
    p.add_argument("kind", choices=["weekly", "daily"])
    p.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: the latest complete one)")
    p.add_argument("--day", help="day, e.g. 2026-11-24 (default: the latest published day)")
    p.add_argument("--language", choices=["en", "zh-CN"], help="default: OPS_REPORT_LANGUAGE")
    p.add_argument("--send", action="store_true", help="email it to the configured recipients")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("rebuild", help="recreate the raw layer from the raw archive")
    p.add_argument("--source", choices=["marketing", "sales", "support", "all"], default="all")
    p.add_argument(
        "--force", action="store_true", help="replace raw even though it still holds data"
    )
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("transform", help="dbt build on the working warehouse")
    p.add_argument("--select")
    p.set_defaults(func=cmd_transform)

    sub.add_parser("airflow-init", help="prepare the embedded Airflow").set_defaults(
        func=cmd_airflow_init
    )

    sub.add_parser(
        "bi-reader", help="PostgreSQL: create/refresh the read-only role BI tools use"
    ).set_defaults(func=cmd_bi_reader)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse, set up logging, run the chosen command; an error of ours is one red line and
    exit status 1 (also for the demo's `ops-demo`, which brings its own parser)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()
    with _sigterm_unwinds():
        try:
            args.func(args)
        except OpsWarehouseError as exc:
            console.print(f"[red]error:[/] {redact(str(exc))}")
            return 1
        except Exception as exc:
            redact_exception(exc)  # the traceback printed next shows no secret
            raise
        except KeyboardInterrupt:
            console.print("[yellow]stopped[/] (Ctrl-C)")
            return 128 + signal.SIGINT
    return 0


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that every `with` block cleans up on the way out
    (child processes stopped, the writer lock released) before the exit status 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
