"""`make bi` refuses clearly what it cannot do: nothing published yet, a port already taken."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from bi import server
from ops_warehouse.settings import Settings


def test_nothing_published_names_what_to_run(tmp_path):
    settings = dataclasses.replace(
        Settings.from_env(), home=tmp_path, published_path=tmp_path / "published.duckdb"
    )
    with pytest.raises(server.BiError, match="nothing has been published yet"):
        server.start(settings)
    assert not (tmp_path / "superset").exists(), "nothing prepared without a warehouse"


def test_a_taken_port_names_the_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind((server.HOST, 0))
        taken.listen()
        settings = dataclasses.replace(
            Settings.from_env(), home=tmp_path, superset_port=taken.getsockname()[1]
        )
        with pytest.raises(server.BiError, match="OPS_SUPERSET_PORT"):
            server.start_server(settings)
