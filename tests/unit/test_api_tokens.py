"""The product's settings carry no API token of their own; the demo brings its tokens.

A run against a real API with no token set stops at once with a configuration error that
names the setting, before any request; the demo (package ops_demo) sets its tokens in the
environment of everything it runs, and never overrides tokens that are set.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from ops_demo import DEMO_TOKENS, with_demo_tokens
from ops_warehouse.errors import SourceConfigError
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources import marketing, support
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings
from tests.conftest import UNTIL

SETTINGS = {"marketing": "OPS_MARKETING_API_TOKEN", "support": "OPS_SUPPORT_API_TOKEN"}


def test_settings_have_no_default_token(monkeypatch):
    for name in SETTINGS.values():
        monkeypatch.delenv(name, raising=False)
    s = Settings.from_env()
    assert (s.marketing_api_token, s.support_api_token) == ("", "")
    monkeypatch.setenv("OPS_MARKETING_API_TOKEN", "real-token")
    assert Settings.from_env().marketing_api_token == "real-token"


@pytest.mark.parametrize("source", ["marketing", "support"])
def test_an_api_client_without_token_is_a_configuration_error(source):
    s = dataclasses.replace(
        Settings.from_env(),
        **{f"{source}_api_token": "", f"{source}_api_url": "http://api.invalid"},
    )
    with pytest.raises(SourceConfigError) as err:
        {"marketing": marketing, "support": support}[source].client(s)
    message = str(err.value)
    assert source in message and SETTINGS[source] in message and "not set" in message


@pytest.mark.parametrize("source", ["marketing", "support"])
def test_a_load_without_token_fails_fast_naming_the_setting(settings, server, source):
    no_token = dataclasses.replace(settings, **{f"{source}_api_token": ""})
    before = server.stats()
    start = datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC)
    started = time.monotonic()
    with pytest.raises(SourceConfigError) as err:
        load_source(source, Window(start, start + timedelta(days=1)), settings=no_token)
    assert time.monotonic() - started < 5
    assert SETTINGS[source] in str(err.value)
    assert server.stats() == before, "no request is sent without a token"


def test_the_demo_sets_its_tokens_only_where_none_is_set():
    assert with_demo_tokens({}) == DEMO_TOKENS
    env = {"OPS_MARKETING_API_TOKEN": "mine", "OPS_SUPPORT_API_TOKEN": ""}
    assert with_demo_tokens(env) == {**DEMO_TOKENS, "OPS_MARKETING_API_TOKEN": "mine"}


def test_the_demo_server_and_the_loads_agree_on_the_demo_tokens(monkeypatch, world_dir):
    from ops_demo.server import DemoServer
    from ops_warehouse import settings as settings_module

    for name in DEMO_TOKENS:
        monkeypatch.setenv(name, "")  # and restored after the test, whatever sets it
    with_demo_tokens()  # what `ops-demo` and `python -m ops_demo.server` do first
    settings_module.get_settings.cache_clear()
    try:
        s = Settings.from_env()
        tokens = {f"OPS_{f.name.upper()}": getattr(s, f.name) for f in dataclasses.fields(s)}
        assert {name: tokens[name] for name in DEMO_TOKENS} == DEMO_TOKENS
        with DemoServer(world_dir) as srv:
            for source in SETTINGS:
                api = {"marketing": marketing, "support": support}[source].client(
                    dataclasses.replace(s, **{f"{source}_api_url": srv.url})
                )
                path = "/marketing/v1/campaigns" if source == "marketing" else "/support/v1/agents"
                assert api.get(path)
    finally:
        settings_module.get_settings.cache_clear()
