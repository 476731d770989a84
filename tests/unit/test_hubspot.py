"""The HubSpot dialect of the signups (docs/sources.md, "HubSpot"): times, the contract rows
of contacts, the mapping file's section, the search's paging and its 10,000-result cap, the
pacing to the secondly limit, and every error answer. HTTP goes to a transport inside the
test (the demo account's search answers it, or a script of answers)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from ops_demo.vendors import hubspot as emulator
from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.sources import hubspot, mapping
from ops_warehouse.pipeline.sources.window import Window
from tests.conftest import make_settings

URL = "http://hubspot.test"
TOKEN = "pat-test-secret-0001"
CONFIG = mapping.parse({"hubspot": {"signups": {"customer_id_property": "shop_id"}}}).section(
    "hubspot"
)["signups"]


# --- times ------------------------------------------------------------------------------------


def test_times_are_read_from_iso_text_and_from_epoch_milliseconds():
    iso = hubspot.parse_time("2025-03-04T05:06:07.891Z")
    assert iso == datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    millis = int(iso.timestamp() * 1000)
    assert hubspot.parse_time(str(millis)) == iso
    assert hubspot.parse_time(millis) == iso
    assert hubspot.parse_time("2025-03-04T06:06:07.891+01:00") == iso
    for unreadable in (None, "", "  ", "yesterday", True, float("nan")):
        assert hubspot.parse_time(unreadable) is None
    assert hubspot._iso("yesterday") == "yesterday"  # served as is: the row is quarantined


# --- contacts -> signups --------------------------------------------------------------------------


def _contact(number: int, **properties: Any) -> dict[str, Any]:
    base = {
        "hs_object_id": str(number),
        "email": f"person{number}@example.org",
        "createdate": "2025-06-01T10:00:00.000Z",
        "lastmodifieddate": "2025-06-02T11:30:00.250Z",
        "shop_id": f"C{number:07d}",
    }
    return {"id": str(number), "properties": {**base, **properties}, "archived": False}


def test_contacts_become_signups_with_utm_from_the_original_source():
    contacts = [
        _contact(
            1,
            hs_analytics_source="PAID_SOCIAL",
            hs_analytics_source_data_1="LinkedIn",
            hs_analytics_source_data_2="lnkd-0003",
            hs_analytics_first_url="https://www.example.org/lp/teams?utm_source=linkedin#top",
        ),
        _contact(
            2,
            hs_analytics_source="PAID_SEARCH",
            hs_analytics_source_data_1="gads-0007",
            hs_analytics_source_data_2="office chairs",
            createdate="1748772000000",  # epoch milliseconds, as older properties hold
        ),
        _contact(3, hs_analytics_source="OFFLINE", hs_analytics_source_data_1="API"),
        _contact(4, hs_analytics_source="DIRECT_TRAFFIC", hs_analytics_first_url=""),
    ]
    rows, leads = hubspot.signup_rows(contacts, CONFIG)
    assert leads == 0
    assert rows[0] == {
        "signup_id": "1",
        "customer_id": "C0000001",
        "email": "person1@example.org",
        "signed_up_at": "2025-06-01T10:00:00.000000Z",
        "utm_source": "linkedin",
        "utm_medium": "paid_social",
        "utm_campaign": "lnkd-0003",
        "landing_page": "/lp/teams",
        "updated_at": "2025-06-02T11:30:00.250000Z",
    }
    assert (rows[1]["utm_source"], rows[1]["utm_medium"], rows[1]["utm_campaign"]) == (
        None,
        "cpc",
        "gads-0007",
    )
    assert rows[1]["signed_up_at"] == "2025-06-01T10:00:00.000000Z"
    for row in rows[2:]:  # sources that carry no utm: organic
        assert (row["utm_source"], row["utm_medium"], row["utm_campaign"]) == (None, None, None)
        assert row["landing_page"] is None


def test_the_mapping_file_names_utm_properties_and_source_rules():
    config = mapping.parse(
        {
            "hubspot": {
                "signups": {
                    "customer_id_property": "shop_id",
                    "utm_properties": {"utm_source": "utm_src", "utm_campaign": "utm_camp"},
                    "original_sources": {
                        "PAID_SEARCH": {"utm_source": "bing", "utm_campaign": "drill_down_2"}
                    },
                    "landing_page": "url",
                }
            }
        }
    ).section("hubspot")["signups"]
    assert {"utm_src", "utm_camp", "shop_id"} <= set(hubspot.properties_asked(config))
    own = _contact(1, utm_src="newsletter", utm_camp="spring", hs_analytics_source="PAID_SEARCH")
    by_source = _contact(
        2,
        hs_analytics_source="PAID_SEARCH",
        hs_analytics_source_data_1="ignored",
        hs_analytics_source_data_2="gads-0001",
        hs_analytics_first_url="https://www.example.org/sale?gclid=x",
    )
    rows, _ = hubspot.signup_rows([own, by_source], config)
    # the contact's own UTM properties win, all three together (utm_medium: none named)
    assert (rows[0]["utm_source"], rows[0]["utm_medium"], rows[0]["utm_campaign"]) == (
        "newsletter",
        None,
        "spring",
    )
    # the mapping file's entry replaces the built-in one whole (no utm_medium any more)
    assert (rows[1]["utm_source"], rows[1]["utm_medium"], rows[1]["utm_campaign"]) == (
        "bing",
        None,
        "gads-0001",
    )
    assert rows[1]["landing_page"] == "https://www.example.org/sale?gclid=x"


def test_a_contact_without_the_customer_id_is_a_lead_and_no_signup():
    contact = _contact(9)
    del contact["properties"]["shop_id"]
    rows, leads = hubspot.signup_rows([contact, _contact(10, shop_id=""), _contact(11)], CONFIG)
    assert leads == 2 and [r["signup_id"] for r in rows] == ["11"]


@pytest.mark.parametrize(
    ("signups", "key"),
    [
        ({}, "hubspot.signups.customer_id_property is required"),
        ({"customer_id_property": ""}, "hubspot.signups.customer_id_property must be"),
        ({"customer_id_property": "x", "modified_property": "updatedAt"}, "modified_property"),
        (
            {"customer_id_property": "x", "original_sources": {"PAID_SERACH": {}}},
            "hubspot.signups.original_sources.PAID_SERACH",
        ),
        (
            {"customer_id_property": "x", "original_sources": {"PAID_SEARCH": {"utm_id": "a"}}},
            "hubspot.signups.original_sources.PAID_SEARCH.utm_id is not a known key",
        ),
        (
            {"customer_id_property": "x", "utm_properties": {"utm_term": "t"}},
            "hubspot.signups.utm_properties.utm_term is not a known key",
        ),
        ({"customer_id_property": "x", "landing_page": "full"}, "hubspot.signups.landing_page"),
        (
            {"customer_id_property": "x", "searches_per_second": 0},
            "hubspot.signups.searches_per_second must be more than 0",
        ),
        ({"customer_id_property": "x", "page_size": 5}, "hubspot.signups.page_size is not a"),
    ],
)
def test_mapping_errors_name_the_key(signups, key):
    with pytest.raises(mapping.MappingError, match="mapping file") as err:
        mapping.parse({"hubspot": {"signups": signups}}).section("hubspot")
    assert key in str(err.value)
    assert err.value.permanent


def test_without_a_mapping_file_the_load_stops_naming_the_missing_key(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(mapping.MappingError, match="hubspot.signups.customer_id_property"):
        hubspot.readers(settings, _Stack())


# --- a HubSpot account inside the test ------------------------------------------------------------


class _Transport(BaseAdapter):
    """Answers each request with ``handler(json body) -> (status, body, headers)``."""

    def __init__(self, handler: Callable[[Any], tuple[int, Any, dict[str, str]]]) -> None:
        super().__init__()
        self.handler = handler
        self.bodies: list[Any] = []
        self.authorizations: list[str] = []

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' adapter interface
        body = json.loads(request.body) if request.body else None
        self.bodies.append(body)
        self.authorizations.append(request.headers.get("Authorization", ""))
        status, payload, headers = self.handler(body)
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response._content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        response.headers.update({"Content-Type": "application/json;charset=utf-8", **headers})
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        pass


class _Clock:
    """A clock that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _Stack:
    def callback(self, *args: Any) -> None:
        pass


def _settings(tmp_path: Path, **overrides: Any):
    settings = make_settings(tmp_path / "home", tmp_path, URL)
    values = dict(
        hubspot_api_url=URL,
        hubspot_token=TOKEN,
        http_max_attempts=4,
        http_backoff_max_s=5.0,
        page_size=1000,
    )
    return dataclasses.replace(settings, **{**values, **overrides})


def _client(tmp_path: Path, handler, per_second: float = 1000.0, **overrides: Any):
    client = hubspot.HubSpotClient(_settings(tmp_path, **overrides), per_second)
    transport = _Transport(handler)
    client.session.mount(URL, transport)
    clock = _Clock()
    client.clock, client.sleep = clock, clock.sleep
    return client, transport, clock


def _account(contacts: list[emulator._Contact], cap: int = emulator.DEFAULT_CONFIG["result_cap"]):
    """The demo account's search over ``contacts``, as a transport handler."""

    searches: dict[str, Any] = {}

    def handler(body: Any) -> tuple[int, Any, dict[str, str]]:
        try:
            return 200, emulator.search(contacts, body, cap, searches), {}
        except emulator.SearchError as exc:
            return exc.status, exc.body, {}

    return handler


START = datetime(2026, 3, 1, tzinfo=UTC)


def _world_contacts(moments: list[datetime]) -> list[emulator._Contact]:
    return [
        emulator.contact(
            {
                "signup_id": f"S{n + 1:08d}",
                "customer_id": f"C{n + 1:07d}",
                "email": f"p{n}@example.org",
                "signed_up_at": moment,
                "utm_source": None,
                "utm_medium": None,
                "utm_campaign": None,
                "landing_page": "/",
                "updated_at": moment,
            }
        )
        for n, moment in enumerate(moments)
    ]


def _read_all(client, lower: datetime | None, upper: datetime, page_size: int = 1000):
    config = {**CONFIG, "customer_id_property": emulator.CUSTOMER_PROPERTY}
    search = hubspot.ContactSearch(client, config, page_size)
    ids: list[str] = []
    for contacts, url in search.pages(
        None if lower is None else hubspot._millis(lower), hubspot._millis(upper)
    ):
        assert url == URL + hubspot.SEARCH
        ids += [c["id"] for c in contacts]
    return ids, search


def test_a_search_is_paged_to_its_end_by_paging_next_after(tmp_path):
    moments = [START + timedelta(minutes=n) for n in range(450)]
    client, transport, _ = _client(tmp_path, _account(_world_contacts(moments)))
    lower, upper = START + timedelta(minutes=10), START + timedelta(minutes=440)
    ids, search = _read_all(client, lower, upper)
    assert len(ids) == len(set(ids)) == 430
    assert search.searches == 1
    assert [b.get("after") for b in transport.bodies] == [None, "200", "400"]
    first = transport.bodies[0]
    assert first["limit"] == hubspot.SEARCH_LIMIT
    assert first["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert first["filterGroups"] == [
        {
            "filters": [
                {
                    "propertyName": "lastmodifieddate",
                    "operator": "GTE",
                    "value": str(hubspot._millis(lower)),
                },
                {
                    "propertyName": "lastmodifieddate",
                    "operator": "LT",
                    "value": str(hubspot._millis(upper)),
                },
            ]
        }
    ]
    assert {"email", "createdate", "shop_customer_id", "hs_analytics_first_url"} <= set(
        first["properties"]
    )
    assert transport.authorizations[0] == f"Bearer {TOKEN}"


def test_a_window_holding_more_than_10000_contacts_is_read_completely(tmp_path):
    """12,000 contacts over a day and, within it, a bulk import of 10,300 sharing one
    millisecond: no search pages past HubSpot's 10,000 results (the account would answer 400),
    and every contact is read exactly once."""
    spread = [START + timedelta(seconds=7 * n) for n in range(12_000)]
    bulk = [START + timedelta(hours=5, milliseconds=1)] * 10_300
    contacts = _world_contacts(sorted(spread + bulk))
    client, transport, _ = _client(tmp_path, _account(contacts))
    ids, search = _read_all(client, None, START + timedelta(days=2))
    assert len(ids) == len(set(ids)) == len(contacts)
    assert search.searches >= 4  # moved on past the cap, and read the bulk millisecond by id
    assert all(
        int(b.get("after") or 0) + b["limit"] <= hubspot.RESULT_CAP for b in transport.bodies
    )
    by_id = [b for b in transport.bodies if b["sorts"][0]["propertyName"] == "hs_object_id"]
    assert by_id, "the millisecond holding more than a search can page through is read by id"


def test_paging_past_the_cap_is_what_the_account_refuses(tmp_path):
    """The emulated account refuses what HubSpot refuses, so the test above can fail."""
    contacts = _world_contacts([START + timedelta(seconds=n) for n in range(30)])
    body = {"limit": 10, "after": "20"}
    assert emulator.search(contacts, body, 30)["results"]
    with pytest.raises(emulator.SearchError) as err:
        emulator.search(contacts, body, 25)
    assert err.value.status == 400 and err.value.body["category"] == "VALIDATION_ERROR"


# --- pacing and errors ------------------------------------------------------------------------------


def _ok(body: Any) -> tuple[int, Any, dict[str, str]]:
    return 200, {"total": 0, "results": []}, {}


def test_searches_are_paced_to_the_secondly_limit(tmp_path):
    client, transport, clock = _client(tmp_path, _ok, per_second=4)
    started = clock.now
    for _ in range(10):
        client.post(hubspot.SEARCH, {})
    assert len(transport.bodies) == 10
    # 4 in the first second, 4 in the next, 2 in the third: two waits, two seconds
    assert len(clock.sleeps) == 2
    assert clock.now - started == pytest.approx(2.0)
    assert client.pacer.waits == clock.sleeps


SECONDLY = {
    "status": "error",
    "message": "You have reached your secondly limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "00000000-0000-0000-0000-000000000001",
    "policyName": "SECONDLY",
    "groupName": "publicapi:search",
}


def _script(*answers: tuple[int, Any, dict[str, str]]):
    queue = list(answers)

    def handler(body: Any) -> tuple[int, Any, dict[str, str]]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def test_the_secondly_limit_answer_waits_a_second_and_asks_again(tmp_path):
    handler = _script((429, SECONDLY, {}), (429, SECONDLY, {"Retry-After": "2"}), _ok(None))
    client, transport, clock = _client(tmp_path, handler)
    body, _ = client.post(hubspot.SEARCH, {})
    assert body == {"total": 0, "results": []}
    assert len(transport.bodies) == 3
    assert client.waits == [1.0, 2.0]  # HubSpot's second, then its Retry-After
    assert clock.sleeps == [1.0, 2.0]


def _error(status: int, category: str, message: str) -> tuple[int, Any, dict[str, str]]:
    body = {"status": "error", "message": message, "correlationId": "c-1", "category": category}
    return status, body, {}


@pytest.mark.parametrize(
    ("answer", "error", "words", "attempts"),
    [
        (
            _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found."),
            SourceConfigError,
            ("OPS_HUBSPOT_TOKEN", "401", "INVALID_AUTHENTICATION"),
            1,
        ),
        (
            _error(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes."),
            SourceConfigError,
            ("OPS_HUBSPOT_TOKEN", "crm.objects.contacts.read", "403"),
            1,
        ),
        (
            _error(404, "OBJECT_NOT_FOUND", "not found"),
            SourceConfigError,
            ("OPS_HUBSPOT_API_URL", URL + hubspot.SEARCH),
            1,
        ),
        (
            _error(400, "VALIDATION_ERROR", "There was a problem with the request."),
            SourceDataError,
            (URL + hubspot.SEARCH, "400", "VALIDATION_ERROR"),
            1,
        ),
        (
            (429, {**SECONDLY, "policyName": "DAILY", "message": "daily limit"}, {}),
            SourceUnavailableError,
            ("daily", "429"),
            1,
        ),
        (
            _error(500, "INTERNAL_ERROR", "internal error"),
            SourceUnavailableError,
            (URL + hubspot.SEARCH, "4 attempts", "OPS_HUBSPOT_API_URL"),
            4,
        ),
        (
            (502, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"}),
            SourceUnavailableError,
            ("502",),
            4,
        ),
        (
            (200, b"<html>maintenance</html>", {"Content-Type": "text/html"}),
            SourceDataError,
            ("not JSON", URL + hubspot.SEARCH),
            1,
        ),
        (
            (200, {"total": 1, "results": "none"}, {}),
            SourceDataError,
            ("'results'", URL + hubspot.SEARCH),
            1,
        ),
    ],
)
def test_each_error_answer_maps_to_its_class_and_permanent_ones_are_not_retried(
    tmp_path, answer, error, words, attempts
):
    client, transport, _ = _client(tmp_path, _script(answer))
    search = hubspot.ContactSearch(client, CONFIG, 100)
    with pytest.raises(OpsError) as err:
        list(search.pages(None, 1))
    assert type(err.value) is error
    assert all(w in str(err.value) for w in words), str(err.value)
    assert len(transport.bodies) == attempts
    assert TOKEN not in str(err.value)


OpsError = (SourceConfigError, SourceDataError, SourceUnavailableError)


def test_a_transient_failure_is_retried_and_the_read_goes_on(tmp_path):
    page = {"total": 0, "results": []}
    handler = _script(_error(503, "SERVICE_UNAVAILABLE", "busy"), (200, page, {}))
    client, transport, clock = _client(tmp_path, handler)
    assert client.post(hubspot.SEARCH, {})[0] == page
    assert len(transport.bodies) == 2 and clock.sleeps == [0.5]


def test_paging_that_repeats_itself_stops_the_load(tmp_path):
    page = {"total": 5, "results": [], "paging": {"next": {"after": "3"}}}
    client, _, _ = _client(tmp_path, _script((200, page, {})))
    with pytest.raises(SourceDataError, match="served before"):
        list(hubspot.ContactSearch(client, CONFIG, 100).pages(None, 1))


def test_no_token_stops_before_any_request(tmp_path):
    with pytest.raises(SourceConfigError, match="OPS_HUBSPOT_TOKEN is not set"):
        hubspot.HubSpotClient(_settings(tmp_path, hubspot_token=""), 4)


def test_the_reader_moves_the_cursor_and_reads_from_it(tmp_path):
    moments = [START + timedelta(hours=n) for n in range(30)]
    client, transport, _ = _client(tmp_path, _account(_world_contacts(moments)))
    config = {**CONFIG, "customer_id_property": emulator.CUSTOMER_PROPERTY}
    search = hubspot.ContactSearch(client, config, 100)
    # a cursor the generic tracker stored: not HubSpot's, so the first load reads everything
    state: dict[str, Any] = {"cursor": (START + timedelta(hours=15)).isoformat()}
    window = Window(START, START + timedelta(hours=20))
    batches = list(hubspot.read_signups(search, config, entity("signups"), state, window))
    assert sum(b.table.num_rows for b in batches) == 20
    assert state == {"cursor": (START + timedelta(hours=19)).isoformat(), "dialect": "hubspot"}
    later = Window(START + timedelta(hours=20), START + timedelta(hours=40))
    batches = list(hubspot.read_signups(search, config, entity("signups"), state, later))
    # from the cursor, inclusive: the contact at it comes again (the merge keeps one)
    assert sum(b.table.num_rows for b in batches) == 11
    assert transport.bodies[-1]["filterGroups"][0]["filters"][0]["value"] == str(
        hubspot._millis(START + timedelta(hours=19))
    )
