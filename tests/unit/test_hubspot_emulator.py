"""The demo's HubSpot account (``ops_demo.vendors.hubspot``) and the HubSpot dialect of the
signups loaded through it: the search's paging and cap, the secondly limit, the error bodies,
and the same signups as the generic dialect's."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from ops_demo.vendors import hubspot as emulator
from ops_warehouse.errors import SourceConfigError
from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources import hubspot
from ops_warehouse.settings import PROJECT_ROOT
from tests.conftest import UNTIL, make_settings
from tests.helpers import day_window, raw_snapshot

TOKEN = "h-token"
MAPPING = PROJECT_ROOT / "config" / "mapping.demo.yml"


@pytest.fixture
def server(world_dir):
    from ops_demo.server import DemoServer

    with DemoServer(
        world_dir, marketing_token="m-token", support_token="s-token", hubspot_token=TOKEN
    ) as srv:
        yield srv


def search(server, body: dict, token: str = TOKEN) -> requests.Response:
    return requests.post(
        server.url + emulator.PATH,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def world_signups(world_dir: Path) -> list[dict]:
    return pq.read_table(world_dir / "api" / "signups.parquet").to_pylist()


# --- the search --------------------------------------------------------------------------------


def test_a_search_pages_with_paging_next_after_and_ends_without_paging(server, world_dir):
    signups = world_signups(world_dir)
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "LT", "value": "9" * 13}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email", "lastmodifieddate", "shop_customer_id", "no_such_property"],
        "limit": 30,
    }
    ids, pages = [], []
    while True:
        answer = search(server, body)
        assert answer.status_code == 200
        page = answer.json()
        pages.append(page)
        assert page["total"] == len(signups)
        ids += [c["id"] for c in page["results"]]
        if "paging" not in page:
            break
        body = {**body, "after": page["paging"]["next"]["after"]}
    assert len(pages) == -(-len(signups) // 30)
    assert sorted(ids) == sorted(emulator.contact_id(s["signup_id"]) for s in signups)
    first = pages[0]["results"][0]
    assert set(first["properties"]) == {"email", "lastmodifieddate", "shop_customer_id"}
    assert first["properties"]["lastmodifieddate"].endswith("Z")
    assert first["updatedAt"] == first["properties"]["lastmodifieddate"]
    modified = [c["properties"]["lastmodifieddate"] for p in pages for c in p["results"]]
    assert modified == sorted(modified)


def test_paging_past_the_result_cap_is_a_400(server):
    server.configure(hubspot={"result_cap": 40})
    assert search(server, {"limit": 20, "after": "20"}).status_code == 200
    refused = search(server, {"limit": 20, "after": "40"})
    assert refused.status_code == 400
    body = refused.json()
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert "40" in body["message"] and body["correlationId"]


def test_the_secondly_limit_answers_hubspots_429_when_configured(server):
    assert all(search(server, {"limit": 1}).status_code == 200 for _ in range(6))
    server.configure(hubspot={"searches_per_second": 2})
    answers = [search(server, {"limit": 1}) for _ in range(4)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and answers[0].status_code == 200
    body = limited[0].json()
    assert (body["status"], body["errorType"], body["policyName"]) == (
        "error",
        "RATE_LIMIT",
        "SECONDLY",
    )
    assert body["message"] == "You have reached your secondly limit."
    time.sleep(1.05)
    assert search(server, {"limit": 1}).status_code == 200


def test_wrong_token_and_missing_scope_answer_hubspots_bodies(server):
    wrong = search(server, {"limit": 1}, token="nope")
    assert wrong.status_code == 401 and wrong.json()["category"] == "INVALID_AUTHENTICATION"
    server.configure(hubspot={"missing_scope": True})
    forbidden = search(server, {"limit": 1})
    assert forbidden.status_code == 403 and forbidden.json()["category"] == "MISSING_SCOPES"
    bad = search(server, {"limit": 500})
    assert bad.status_code == 403  # the scope is checked first
    server.configure(hubspot={"missing_scope": False})
    assert search(server, {"limit": 500}).json()["category"] == "VALIDATION_ERROR"
    assert search(server, {"sorts": [{"propertyName": "nope"}]}).status_code == 400


def test_hubspot_config_is_validated(server):
    for bad in ({"result_cap": 0}, {"searches_per_second": 0}, {"missing_scope": 1}, {"x": 1}):
        with pytest.raises(ValueError, match="hubspot"):
            emulator.validate_config(bad)


def test_original_sources_follow_hubspots_rules(world_dir):
    signups = world_signups(world_dir)
    seen = {emulator.original_source(s)[0] for s in signups}
    assert {"PAID_SEARCH", "PAID_SOCIAL"} <= seen
    assert seen & {"ORGANIC_SEARCH", "DIRECT_TRAFFIC"}
    paid = next(s for s in signups if s["utm_medium"] == "paid_social")
    source, network, campaign = emulator.original_source(paid)
    assert network.lower() == paid["utm_source"] and network != paid["utm_source"]
    assert campaign == paid["utm_campaign"]
    url = emulator.first_url(
        next(s for s in signups if s["utm_medium"] == "cpc" and s["landing_page"])
    )
    assert "gclid=" in url and "utm_medium=cpc" in url


# --- loading through it ------------------------------------------------------------------------


def hubspot_settings(home: Path, world_dir: Path, url: str, **overrides):
    settings = make_settings(home, world_dir, url, **overrides)
    return dataclasses.replace(
        settings,
        signups_dialect="hubspot",
        hubspot_api_url=url,
        hubspot_token=TOKEN,
        mapping_file=MAPPING,
    )


SIGNUP_FIELDS = entity("signups").field_names


def as_generic(rows: list[tuple]) -> list[tuple]:
    """HubSpot's signups with the signup id the generic dialect has: the one difference by
    design (a contact's id is HubSpot's number)."""
    at = SIGNUP_FIELDS.index("signup_id")
    out = []
    for row in rows:
        number = int(row[at]) - emulator.CONTACT_BASE
        out.append((*row[:at], f"S{number:08d}", *row[at + 1 :]))
    return sorted(out)


def test_the_hubspot_dialect_loads_the_signups_the_generic_one_does(
    settings, server, world_dir, tmp_path
):
    """Every contract field of every signup comes out of HubSpot as the generic dialect serves
    it: customer ids (a custom property), e-mails, times (ISO text with milliseconds), utm
    values (from the original source and its drill-downs through the mapping file), landing
    pages (the path of the first URL) and updated_at; a lost landing page fixed later comes
    with the next run. The one difference by design: signup_id is the contact's id."""
    from ops_demo import world

    hs = hubspot_settings(tmp_path / "hubspot", world_dir, server.url)
    load_source("marketing", day_window(UNTIL), settings=settings)
    summary = load_source("marketing", day_window(UNTIL), settings=hs)
    generic = raw_snapshot(settings)
    assert generic["signups"]
    assert summary.entities["signups"].rows_quarantined == 0
    loaded = raw_snapshot(hs)
    assert as_generic(loaded["signups"]) == sorted(generic["signups"])
    assert {r[SIGNUP_FIELDS.index("utm_medium")] for r in loaded["signups"]} >= {"cpc", None}
    for name in ("ad_performance", "campaigns", "budget", "kpi_targets"):
        assert loaded[name] == generic[name]
    world.advance(world_dir, days=2)
    for offset in (1, 2):
        for each in (settings, hs):
            load_source("marketing", day_window(UNTIL + timedelta(days=offset)), settings=each)
    advanced = raw_snapshot(settings)["signups"]
    assert len(advanced) > len(generic["signups"])
    assert as_generic(raw_snapshot(hs)["signups"]) == sorted(advanced)
    assert server.stats()["requests"]["hubspot /crm/v3/objects/contacts/search"] >= 3


def test_searches_capped_below_the_world_still_load_every_signup(
    settings, server, world_dir, tmp_path, monkeypatch
):
    """The 10,000-result cap, scaled down to the small world: every search stops before the
    account's cap, the next one starts at the last modified date read, and the load holds
    every signup once."""
    cap = 20
    monkeypatch.setattr(hubspot, "RESULT_CAP", cap)
    server.configure(hubspot={"result_cap": cap})
    hs = hubspot_settings(tmp_path / "hubspot", world_dir, server.url, page_size=7)
    load_source("marketing", day_window(UNTIL), settings=hs)
    load_source("marketing", day_window(UNTIL), settings=settings)
    assert as_generic(raw_snapshot(hs)["signups"]) == sorted(raw_snapshot(settings)["signups"])
    stats = server.stats()
    assert stats["responses"].get("400", 0) == 0
    assert (
        stats["requests"]["hubspot /crm/v3/objects/contacts/search"]
        > len(world_signups(world_dir)) // 7
    )


def test_the_loader_keeps_to_the_secondly_limit(settings, server, world_dir, tmp_path):
    """The mapping file paces the loader to 2 searches a second, the account allows 3 (a
    margin for the jitter between when the loader sends and when the server counts): no
    search is refused, and the load takes the time the pacing needs."""
    server.configure(hubspot={"searches_per_second": 3})
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(
        MAPPING.read_text().replace("searches_per_second: 4", "searches_per_second: 2")
    )
    hs = dataclasses.replace(
        hubspot_settings(tmp_path / "hubspot", world_dir, server.url, page_size=15),
        mapping_file=mapping_file,
    )
    started = time.monotonic()
    load_source("marketing", day_window(UNTIL), settings=hs)
    searches = server.stats()["requests"]["hubspot /crm/v3/objects/contacts/search"]
    assert searches == -(-len(world_signups(world_dir)) // 15)
    assert server.stats()["responses"].get("429", 0) == 0
    assert time.monotonic() - started >= (searches - 2) / 2 - 0.1


def test_the_loader_waits_out_a_secondly_429(settings, server, world_dir, tmp_path):
    """An account stricter than the mapping file says answers 429: the loader waits and
    every signup is loaded."""
    server.configure(hubspot={"searches_per_second": 1})
    hs = hubspot_settings(tmp_path / "hubspot", world_dir, server.url, page_size=30)
    load_source("marketing", day_window(UNTIL), settings=hs)
    load_source("marketing", day_window(UNTIL), settings=settings)
    assert server.stats()["responses"].get("429", 0) > 0
    assert as_generic(raw_snapshot(hs)["signups"]) == sorted(raw_snapshot(settings)["signups"])


def test_a_wrong_token_stops_the_load_naming_the_setting(server, world_dir, tmp_path):
    hs = dataclasses.replace(
        hubspot_settings(tmp_path / "hubspot", world_dir, server.url), hubspot_token="wrong-one"
    )
    with pytest.raises(SourceConfigError, match="OPS_HUBSPOT_TOKEN") as err:
        load_source("marketing", day_window(UNTIL), settings=hs)
    assert "wrong-one" not in str(err.value)
    assert server.stats()["requests"]["hubspot /crm/v3/objects/contacts/search"] == 1


def test_times_are_milliseconds_in_iso_text():
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert emulator._stamp(moment) == "2026-01-02T03:04:05.678Z"
    assert hubspot.parse_time(emulator._stamp(moment)) == moment.replace(microsecond=678000)
