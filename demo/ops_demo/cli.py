"""`ops-demo`: the demo world's command line (`make demo`, `make demo-fresh`, `make up`).

ops-demo [--fresh]            whole pipeline on the demo world, through Airflow
ops-demo generate|advance     make or move the demo world
ops-demo serve                the demo marketing + support APIs
ops-demo up                   Airflow (UI on 127.0.0.1:8080) + the demo APIs, until Ctrl-C

Every command runs with the demo APIs' tokens in its environment (``DEMO_TOKENS``, unless
OPS_MARKETING_API_TOKEN / OPS_SUPPORT_API_TOKEN are set), so the demo server, the loads and
the Airflow processes it starts agree on them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from rich.console import Console

from ops_demo import with_demo_tokens
from ops_warehouse.cli import run, writes_warehouse
from ops_warehouse.settings import get_settings

console = Console()


def _day(value: str) -> date:
    return date.fromisoformat(value)


@writes_warehouse
def cmd_demo(args: argparse.Namespace) -> None:
    from ops_demo.run import run_demo

    run_demo(fresh=args.fresh, console=console)


def cmd_up(args: argparse.Namespace) -> None:
    from ops_demo.run import run_up

    run_up(console=console)


def cmd_generate(args: argparse.Namespace) -> None:
    from ops_demo.run import generate_world

    s = get_settings()
    generate_world(
        seed=args.seed if args.seed is not None else s.demo_seed,
        scale=args.scale if args.scale is not None else s.demo_scale,
        until=args.until or s.demo_until,
        console=console,
    )


def cmd_advance(args: argparse.Namespace) -> None:
    from ops_demo.run import advance_world

    advance_world(args.days, console=console)


def cmd_serve(args: argparse.Namespace) -> None:
    from ops_demo import server

    s = get_settings()
    server.main(["--dir", str(s.demo_dir), "--port", str(args.port or s.demo_port), *args.extra])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ops-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="regenerate world and warehouse")
    parser.set_defaults(func=cmd_demo)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("generate", help="generate the demo world")
    p.add_argument("--seed", type=int)
    p.add_argument("--scale", type=float)
    p.add_argument("--until", type=_day)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("advance", help="move the demo world forward")
    p.add_argument("--days", type=int, required=True)
    p.set_defaults(func=cmd_advance)
    p = sub.add_parser("serve", help="serve the demo APIs in the foreground")
    p.add_argument("--port", type=int)
    p.add_argument("extra", nargs=argparse.REMAINDER, help="options passed to the server")
    p.set_defaults(func=cmd_serve)
    sub.add_parser("up", help="Airflow (this machine only) + demo APIs").set_defaults(func=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    with_demo_tokens()
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
