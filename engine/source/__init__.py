"""The source PostgreSQL: connections, catalog, types, the replication stream, the copy, the schema cache."""
