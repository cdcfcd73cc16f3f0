"""The headless engine: PostgreSQL logical replication into analytical destinations (ARCHITECTURE.md)."""
