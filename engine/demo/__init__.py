"""`etl-tui demo`: throwaway servers, a shop database under a live workload, a pipeline into DuckDB."""
