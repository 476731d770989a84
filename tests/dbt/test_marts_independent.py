"""bootstrap (being written)"""
from __future__ import annotations


def test_bootstrap(duckdb_marts):
    print("WAREHOUSE", duckdb_marts.warehouse_path)
