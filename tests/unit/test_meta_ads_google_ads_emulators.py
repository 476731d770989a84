"""The demo's ad platforms (ops_demo.vendors.google_ads, .meta_ads) answer as the platforms do:
their authentication, error bodies, paging and field names, asked directly over HTTP."""

from __future__ import annotations

import json

import requests

from ops_demo import DEMO_TOKENS
from ops_demo.vendors import google_ads, meta_ads

CUSTOMER = google_ads.CUSTOMERS[0]


def token(url: str, **changes: str) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": DEMO_TOKENS["OPS_GOOGLE_ADS_CLIENT_ID"],
        "client_secret": DEMO_TOKENS["OPS_GOOGLE_ADS_CLIENT_SECRET"],
        "refresh_token": DEMO_TOKENS["OPS_GOOGLE_ADS_REFRESH_TOKEN"],
        **changes,
    }
    return requests.post(f"{url}/token", data=form, timeout=5)


def search(url: str, query: str, access: str, version: str = "v23", **headers: str):
    sent = {
        "Authorization": f"Bearer {access}",
        "developer-token": DEMO_TOKENS["OPS_GOOGLE_ADS_DEVELOPER_TOKEN"],
        "login-customer-id": google_ads.MANAGER_ID,
        **headers,
    }
    return requests.post(
        f"{url}/{version}/customers/{CUSTOMER}/googleAds:search",
        json={"query": query},
        headers=sent,
        timeout=5,
    )


def error_code(response: requests.Response) -> dict:
    return response.json()["error"]["details"][0]["errors"][0]["errorCode"]


def test_google_token_endpoint_and_errors(server):
    assert token(server.url, refresh_token="stale").json() == {
        "error": "invalid_grant",
        "error_description": "Bad Request",
    }
    assert token(server.url, client_secret="x").status_code == 401
    access = token(server.url).json()["access_token"]
    campaigns = "SELECT campaign.id, campaign.start_date_time FROM campaign"
    assert search(server.url, campaigns, access).status_code == 200
    refused = search(server.url, campaigns, "not-a-token")
    assert refused.status_code == 401
    assert error_code(refused) == {"authenticationError": "OAUTH_TOKEN_INVALID"}
    outside = search(server.url, campaigns, access, **{"login-customer-id": "1111111111"})
    assert error_code(outside) == {"authorizationError": "USER_PERMISSION_DENIED"}
    # the date-only field names are gone from v23 on, and there before
    old = search(server.url, "SELECT campaign.start_date FROM campaign", access)
    assert error_code(old) == {"queryError": "UNRECOGNIZED_FIELD"}
    assert search(server.url, "SELECT campaign.start_date FROM campaign", access, "v22").ok
    metrics = search(server.url, "SELECT campaign.id, metrics.clicks FROM campaign", access)
    assert error_code(metrics) == {"queryError": "EXPECTED_FILTERS_ON_DATE_RANGE"}
    assert search(server.url, campaigns, access, "v12").status_code == 404


def test_google_pages_and_quota(server):
    server.configure(google_ads={"page_size": 3, "quota_every": 2, "retry_delay_s": 7})
    access = token(server.url).json()["access_token"]
    query = (
        "SELECT campaign.id, segments.date, metrics.cost_micros FROM campaign "
        "WHERE segments.date BETWEEN '2026-11-01' AND '2026-11-21'"
    )
    first = search(server.url, query, access).json()
    assert len(first["results"]) == 3 and first["nextPageToken"]
    assert isinstance(first["results"][0]["metrics"]["costMicros"], str)
    quota = search(server.url, query, access)
    assert quota.status_code == 429
    failure = quota.json()["error"]["details"][0]["errors"][0]
    assert failure["details"]["quotaErrorDetails"]["retryDelay"] == "7s"


def test_meta_account_paging_throttling_and_errors(server):
    base = f"{server.url}/v24.0/act_{meta_ads.AD_ACCOUNT}"
    auth = {"Authorization": f"Bearer {DEMO_TOKENS['OPS_META_ACCESS_TOKEN']}"}
    account = requests.get(base, headers=auth, timeout=5).json()
    assert account["currency"] == "USD" and account["timezone_name"]
    wrong = requests.get(base, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, 190)
    old = requests.get(base.replace("v24.0", "v12.0"), headers=auth, timeout=5)
    assert old.json()["error"]["code"] == 2635
    params = {
        "level": "campaign",
        "time_increment": "1",
        "fields": "campaign_id,spend,impressions,clicks,actions,date_start,date_stop",
        "time_range": json.dumps({"since": "2026-11-01", "until": "2026-11-21"}),
        "limit": "2",
    }
    page = requests.get(f"{base}/insights", params=params, headers=auth, timeout=5).json()
    assert len(page["data"]) == 2 and "next" in page["paging"]
    assert all(isinstance(r["spend"], str) for r in page["data"])
    last = requests.get(
        f"{base}/campaigns", params={"fields": "id", "limit": "500"}, headers=auth, timeout=5
    ).json()
    assert "next" not in last["paging"] and last["paging"]["cursors"]["after"]
    server.configure(meta_ads={"throttle_every": 1, "regain_minutes": 2})
    throttled = requests.get(f"{base}/insights", params=params, headers=auth, timeout=5)
    assert (throttled.status_code, throttled.json()["error"]["code"]) == (400, 80004)
    usage = json.loads(throttled.headers["x-business-use-case-usage"])
    assert usage[meta_ads.AD_ACCOUNT][0]["estimated_time_to_regain_access"] == 2
