"""Personal data stays in the warehouses (docs/security.md): after loads, a replay and a
rebuild, no file under the home folder outside the working warehouse and the raw archive (its
backup for rebuilds) holds a customer's e-mail or name, or an agent's name. dlt's load
packages are deleted once the warehouse committed them, and its folder is its owner's only.

Every file is read as what it holds: Parquet decoded (its pages are compressed), gzip
unpacked, anything else as bytes."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import stat
from pathlib import Path

import pyarrow.parquet as pq

from ops_warehouse.pipeline.contracts import ENTITIES, PERSONAL_FIELDS
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.quarantine import replay, sweep
from ops_warehouse.pipeline.rebuild import rebuild
from tests.conftest import UNTIL
from tests.helpers import day_window, source_snapshot

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

# A bad row of each kind of personal field, so quarantine payloads carry some too.
BAD_ROWS = {
    "signups": [
        {
            "signup_id": None,
            "customer_id": "C9",
            "email": "quarantined.signup@example.com",
            "signed_up_at": "2026-11-20T10:00:00Z",
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
            "landing_page": "/",
            "updated_at": "2026-11-20T10:00:00Z",
        }
    ],
    "tickets": [
        {
            "ticket_id": 990001,
            "requester_email": "quarantined.requester@example.com",
            "subject": "my parcel",
            "category": "billing",
            "channel": "email",
            "priority": "critical",
            "status": "open",
            "assignee_id": None,
            "created_at": "2026-11-21T08:00:00Z",
            "updated_at": "2026-11-21T08:00:00Z",
        }
    ],
}


def personal_values(world_dir: Path) -> tuple[set[str], set[str]]:
    """The world's e-mail addresses and names, as its source systems serve them."""
    emails, names = set(), set()
    snapshot = source_snapshot(world_dir)
    for entity in ENTITIES:
        fields = [i for i, f in enumerate(entity.fields) if f.name in PERSONAL_FIELDS]
        offset = 1 if entity.mode == "files" else 0  # a sheet's rows start with their file
        for row in snapshot.get(entity.name, []):
            for i in fields:
                if row[i + offset]:
                    (emails if "@" in row[i + offset] else names).add(row[i + offset])
    for rows in BAD_ROWS.values():
        emails |= {v for row in rows for k, v in row.items() if k in PERSONAL_FIELDS}
    return emails, names


def readable_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="ignore")


def files_holding_personal_data(
    home: Path, emails: set[str], names: set[str], warehouses: list[Path]
) -> dict[str, list[str]]:
    """Every file under ``home`` outside ``warehouses`` (files or folders) that holds one of
    the values, with up to three of them."""
    found = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        if any(
            path == w or w in path.parents or path.name.startswith(w.name + ".") for w in warehouses
        ):
            continue
        text = readable_text(path)
        hits = set(EMAIL.findall(text)) & emails
        hits |= {n for n in names if n in text}
        if hits:
            found[str(path.relative_to(home))] = sorted(hits)[:3]
    return found


def test_no_file_outside_the_warehouses_holds_personal_data(settings, server, world_dir):
    emails, names = personal_values(world_dir)
    assert len(emails) > 100 and len(names) > 100, "the world has people to look for"
    server.configure(bad_rows=BAD_ROWS)
    bad = dataclasses.replace(settings, quarantine_threshold=1.0)
    for source in ("marketing", "sales", "support"):
        load_source(source, day_window(UNTIL), settings=bad, run_id="first")
    sweep(bad, as_of_end=day_window(UNTIL).end)
    replay(bad)
    rebuild(bad, force=True)

    warehouses = [settings.warehouse_path, settings.home / "raw_archive"]
    assert files_holding_personal_data(settings.home, emails, names, warehouses) == {}
    # the scan sees what it looks for: the warehouse's backup holds the same people
    archive = files_holding_personal_data(settings.home, emails, names, [settings.warehouse_path])
    assert any(path.startswith("raw_archive/") for path in archive)
    dlt = settings.dlt_dir
    assert stat.S_IMODE(dlt.stat().st_mode) == 0o700
    assert not list(dlt.glob("*/load/loaded/*")), "no load package is kept once loaded"
