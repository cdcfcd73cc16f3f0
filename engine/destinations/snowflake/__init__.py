"""Snowflake: naming, types, Parquet PUT + COPY into landing tables, MERGE, and the Snowpipe Streaming loader."""
