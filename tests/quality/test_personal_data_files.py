"""After the whole pipeline (loads, dbt build, publish, both reports) no file outside the
working warehouse and its raw archive holds a customer's e-mail or name: not dlt's folder,
dbt's artifacts and logs, the published warehouse or the reports (docs/security.md)."""

from __future__ import annotations

from ops_warehouse.pipeline import audit
from ops_warehouse.reports.build import run_report
from ops_warehouse.warehouse import publish
from tests.conftest import MARTS_UNTIL
from tests.quality.wap import working_copy
from tests.reports.conftest import WEEK
from tests.unit.test_personal_data import files_holding_personal_data, personal_values


def test_the_pipeline_leaves_personal_data_in_the_warehouses_only(
    duckdb_marts, marts_world, tmp_path
):
    emails, names = personal_values(marts_world)
    home = tmp_path / "home"
    settings = working_copy(duckdb_marts, home, reports_dir=home / "reports")
    run = audit.RunInfo("transform", f"scheduled__{MARTS_UNTIL}")
    audit.record_run_start(settings, run, as_of=MARTS_UNTIL)
    publish.publish(settings, run)
    run_report(settings, "daily", period_key=MARTS_UNTIL.isoformat(), send=False)
    run_report(settings, "weekly", period_key=WEEK, send=False)
    assert (home / "reports" / "weekly" / WEEK / "report.pdf").is_file()

    # the home the world was loaded and built in: dlt's folder, dbt's target and logs
    built = [duckdb_marts.warehouse_path, duckdb_marts.home / "raw_archive"]
    assert files_holding_personal_data(duckdb_marts.home, emails, names, built) == {}
    # and the one it was published and reported from: the published file, the reports
    assert settings.published_path.is_file()
    assert files_holding_personal_data(home, emails, names, [settings.warehouse_path]) == {}
