"""Batching: changes grouped by rows, bytes and fill time, then turned into Arrow tables per step."""
