"""Destinations: the Destination protocol (landing + MERGE + checkpoint in one transaction), DuckDB and Snowflake."""
