"""DuckDB: a local file destination with the same landing + MERGE model as Snowflake."""
