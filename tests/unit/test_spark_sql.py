"""The Spark adapter's SQL text: parameters as literals, and a published reader's names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ops_warehouse.warehouse.engines import SparkConnection, SparkCursor, spark_literal


class _Recorder:
    """Stands in for a PyHive connection: remembers the SQL it was given."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def cursor(self):
        recorder = self

        class Cursor:
            description = (("d", "DATE_TYPE"), ("t", "TIMESTAMP_TYPE"), ("n", "INT_TYPE"))

            def execute(self, sql):
                recorder.sql.append(sql)

            def fetchall(self):
                return [("2026-11-22", "2026-11-22 23:30:00.5", 3), (None, None, None)]

        return Cursor()


def test_parameters_become_literals_in_order():
    con = _Recorder()
    SparkConnection(con).execute(
        "select * from t where a = ? and b in ? and c > ? and d = ? and e is ?",
        ["it's \\ here", (1, 2), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), date(2026, 1, 2), None],
    )
    assert con.sql == [
        "select * from t where a = 'it\\'s \\\\ here' and b in (1, 2) and "
        "c > timestamp'2026-01-02 03:04:05' and d = date'2026-01-02' and e is null"
    ]


def test_an_aware_timestamp_is_written_in_utc():
    shanghai = timezone(timedelta(hours=8))
    assert spark_literal(datetime(2026, 1, 2, 8, 0, tzinfo=shanghai)) == (
        "timestamp'2026-01-02 00:00:00'"
    )
    assert spark_literal(Decimal("12.30")) == "12.30"
    assert spark_literal(True) == "true"


def test_placeholders_and_parameters_must_match():
    with pytest.raises(ValueError, match="2 placeholders for 1 parameters"):
        SparkConnection(_Recorder()).execute("select ? + ?", [1])


def test_a_published_reader_reads_one_version_by_the_usual_names():
    con = _Recorder()
    reader = SparkConnection(con, {"marts": "ops_pub_1", "audit": "ops_pub_1_audit"})
    reader.execute(
        "select * from marts.kpi_daily k join audit.pipeline_runs p on k.x = p.x "
        "where p.note <> 'staging_marts.x'"
    )
    assert con.sql == [
        "select * from ops_pub_1.kpi_daily k join ops_pub_1_audit.pipeline_runs p on k.x = p.x "
        "where p.note <> 'staging_marts.x'"
    ]


def test_dates_and_timestamps_come_back_as_python_values():
    con = _Recorder()
    rows = SparkConnection(con).execute("select 1").fetchall()
    assert rows == [
        (date(2026, 11, 22), datetime(2026, 11, 22, 23, 30, 0, 500000, tzinfo=UTC), 3),
        (None, None, None),
    ]
    assert isinstance(SparkConnection(con).execute("select 1"), SparkCursor)


def test_dbt_and_our_own_sessions_agree_on_the_settings_the_money_relies_on():
    """dbt's sessions (profiles.yml) and ours (SPARK_SESSION: checks, GX, publish, readers)
    set the same values: a check recomputing money under other decimal rules than the models
    rounds half-cent cases the other way (a scale-10 reconciliation was 0.24 off)."""
    from pathlib import Path

    import yaml

    from ops_warehouse.warehouse.engines import SPARK_SESSION

    profiles = yaml.safe_load(
        (Path(__file__).parents[2] / "dbt_project" / "profiles.yml").read_text()
    )
    params = profiles["ops_warehouse"]["outputs"]["spark"]["server_side_parameters"]
    dbt = {k.removeprefix("set:hiveconf:"): str(v) for k, v in params.items()}
    ours = dict(s.split("=", 1) for s in SPARK_SESSION)
    assert dbt["spark.sql.decimalOperations.allowPrecisionLoss"] == "false"
    assert {k: ours.get(k) for k in dbt} == dbt
