"""The warehouse engines (DuckDB, PostgreSQL): reading, the working and published
databases, the writer lock, publish, BI access and the Parquet export."""
