"""Google Ads and Meta Ads end to end: the demo world's google_ads and meta_ads campaigns
served by the platforms' emulators (ops_demo.vendors.google_ads, .meta_ads) and loaded through
the adapters give the raw ad_performance and campaigns rows the generic marketing API gives
for those channels, field by field; throttling and the mapping file along the way."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from ops_demo import DEMO_TOKENS
from ops_warehouse.errors import SourceConfigError
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources import mapping
from tests.conftest import UNTIL, make_settings
from tests.helpers import day_window, raw_snapshot

MAPPING = Path(__file__).parents[2] / "config" / "mapping.demo.yml"
PLATFORM_CHANNELS = ("google_ads", "meta_ads")


def platform_settings(home: Path, world_dir: Path, url: str, **overrides):
    values = dict(
        ad_platforms=("google_ads", "meta_ads"),
        mapping_file=MAPPING,
        google_ads_api_url=url,
        google_ads_oauth_url=f"{url}/token",
        google_ads_client_id=DEMO_TOKENS["OPS_GOOGLE_ADS_CLIENT_ID"],
        google_ads_client_secret=DEMO_TOKENS["OPS_GOOGLE_ADS_CLIENT_SECRET"],
        google_ads_refresh_token=DEMO_TOKENS["OPS_GOOGLE_ADS_REFRESH_TOKEN"],
        google_ads_developer_token=DEMO_TOKENS["OPS_GOOGLE_ADS_DEVELOPER_TOKEN"],
        meta_api_url=url,
        meta_access_token=DEMO_TOKENS["OPS_META_ACCESS_TOKEN"],
    )
    return make_settings(home, world_dir, url, **{**values, **overrides})


def requests_to(server, name: str) -> int:
    return sum(n for key, n in server.stats()["requests"].items() if key.startswith(name))


def expected_from_generic(generic: dict[str, list[tuple]], read_at: str) -> dict[str, list]:
    """The generic dialect's rows of the google_ads and meta_ads channels as the platforms
    must give them. By design:

    - a Google Ads campaign's updated_at is the end of the run that read it: GAQL serves no
      time of a campaign's last change (Meta's updated_time is the world's own);
    - every other field is the same: campaign ids through each platform's
      campaign_id_format, money and conversions, dates (the accounts' days are the world's
      UTC days), objectives and statuses through the mapping file's tables."""
    ads = [r for r in generic["ad_performance"] if r[1] in PLATFORM_CHANNELS]
    campaigns = [
        (*r[:9], read_at if r[2] == "google_ads" else r[9])
        for r in generic["campaigns"]
        if r[2] in PLATFORM_CHANNELS
    ]
    return {"ad_performance": ads, "campaigns": sorted(campaigns)}


def test_the_platforms_load_what_the_generic_dialect_loads(tmp_path, world_dir, server):
    generic_settings = make_settings(tmp_path / "generic", world_dir, server.url)
    load_source("marketing", day_window(UNTIL), settings=generic_settings)
    generic = raw_snapshot(generic_settings)
    assert {r[1] for r in generic["ad_performance"]} >= set(PLATFORM_CHANNELS)

    settings = platform_settings(tmp_path / "ads", world_dir, server.url, page_size=40)
    # three daily runs: each re-reads the look-back days the platforms restate
    for day in (UNTIL - timedelta(days=2), UNTIL - timedelta(days=1), UNTIL):
        window = day_window(day)
        summary = load_source("marketing", window, settings=settings)
    loaded = raw_snapshot(settings)
    expected = expected_from_generic(generic, window.end.isoformat())
    for name, rows in expected.items():
        assert rows, f"the world has no {name} of the platforms' channels"
        assert len(loaded[name]) == len(rows), name
        assert sorted(loaded[name]) == sorted(rows), f"{name}: the platforms' raw rows differ"
    assert summary.entities["ad_performance"].rows_quarantined == 0
    # both Google customer accounts and the Meta account were read, page by page
    stats = server.stats()["requests"]
    searches = {k: n for k, n in stats.items() if "googleAds:search" in k}
    assert len(searches) == 2, searches
    assert any("/act_100200300400/insights" in k for k in stats)
    assert requests_to(server, "google_ads /token") >= 1


def test_throttled_platforms_are_waited_for_and_change_nothing(tmp_path, world_dir, server):
    settings = platform_settings(tmp_path / "calm", world_dir, server.url, page_size=40)
    load_source("marketing", day_window(UNTIL), settings=settings)
    calm = raw_snapshot(settings)

    server.configure(
        google_ads={"quota_every": 3, "retry_delay_s": 0, "page_size": 40},
        meta_ads={"throttle_every": 3, "regain_minutes": 0.001},
    )
    before = {name: requests_to(server, name) for name in ("google_ads", "meta_ads")}
    throttled = platform_settings(tmp_path / "throttled", world_dir, server.url, page_size=40)
    load_source("marketing", day_window(UNTIL), settings=throttled)
    assert raw_snapshot(throttled)["ad_performance"] == calm["ad_performance"]
    assert raw_snapshot(throttled)["campaigns"] == calm["campaigns"]
    # every third request was refused, and asked again
    made = {name: requests_to(server, name) - n for name, n in before.items()}
    assert made["google_ads"] > before["google_ads"]
    assert made["meta_ads"] > before["meta_ads"]


def test_a_bad_mapping_file_stops_the_load_naming_the_key(tmp_path, world_dir, server):
    bad = tmp_path / "mapping.yml"
    bad.write_text(
        MAPPING.read_text().replace(
            'campaign_id_format: "meta-{id:04d}"', "campaign_id_format: meta"
        )
    )
    settings = platform_settings(tmp_path / "bad", world_dir, server.url, mapping_file=bad)
    with pytest.raises(mapping.MappingError, match=r"meta_ads\.campaign_id_format"):
        load_source("marketing", day_window(UNTIL), settings=settings)
    assert requests_to(server, "google_ads") == 0 and requests_to(server, "meta_ads") == 0


def test_missing_credentials_stop_the_load_naming_the_settings(tmp_path, world_dir, server):
    settings = platform_settings(tmp_path / "nocred", world_dir, server.url)
    settings = dataclasses.replace(settings, google_ads_refresh_token="", meta_access_token="")
    with pytest.raises(SourceConfigError, match="OPS_GOOGLE_ADS_REFRESH_TOKEN"):
        load_source("marketing", day_window(UNTIL), settings=settings)


def test_generic_beside_the_platforms_serves_only_the_other_channels(tmp_path, world_dir, server):
    generic_settings = make_settings(tmp_path / "generic", world_dir, server.url)
    load_source("marketing", day_window(UNTIL), settings=generic_settings)
    generic = raw_snapshot(generic_settings)

    settings = platform_settings(
        tmp_path / "all", world_dir, server.url, ad_platforms=("generic", "google_ads", "meta_ads")
    )
    window = day_window(UNTIL)
    load_source("marketing", window, settings=settings)
    loaded = raw_snapshot(settings)
    # every channel once: tiktok_ads and linkedin_ads from the generic API, the others from
    # their platforms (Google campaigns' updated_at: the run's end)
    assert sorted(loaded["ad_performance"]) == sorted(generic["ad_performance"])
    expected = [
        (*r[:9], window.end.isoformat()) if r[2] == "google_ads" else r
        for r in generic["campaigns"]
    ]
    assert sorted(loaded["campaigns"]) == sorted(expected)
    assert {r[2] for r in loaded["campaigns"]} == {
        "google_ads",
        "meta_ads",
        "tiktok_ads",
        "linkedin_ads",
    }
