"""Monitoring: the WAL monitor (slot lag, wal_status, safe_wal_size) and its alerts (rules, log, webhook)."""
