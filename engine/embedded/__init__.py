"""Throwaway PostgreSQL and Redis servers for the demo, the tests and the benchmarks."""
