"""Automated reports for ops leads (docs/reports.md): the weekly ops report and the daily digest.

Built from the **published** warehouse only, so that every number equals what a BI tool shows.

- ``periods``: which week or day a report is about, and parsing ``2026-W47`` / ``2026-11-24``.
- ``data``: the queries of the published marts and audit trail (DuckDB file or PostgreSQL).
- ``anomalies``: a KPI more than ``settings.anomaly_sigma`` standard deviations from its
  trailing 8-period mean.
- ``i18n`` + ``messages.json``: every label, sentence and chart title, in ``en`` and ``zh-CN``.
- ``formatting``: numbers, money, percentages, durations and dates for the locale (Babel).
- ``content``: the report's contents as data (scorecard rows, sentences, tables).
- ``charts``: the chart images (matplotlib, no browser).
- ``render``: HTML and text from the Jinja2 templates, the PDF (WeasyPrint), the CSV.
- ``archive``: the dated folders under ``settings.reports_dir`` and their index.
- ``delivery``: the email (HTML + text, inline charts, PDF and CSV attached) and its record.
- ``build``: the one call that does all of it, used by the DAG and the CLI.

Nothing heavy is imported here: the DAG file imports this package when it is parsed.
"""
