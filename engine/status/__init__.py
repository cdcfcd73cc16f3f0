"""Status: the board the console and `etl-tui status` show, the collector that builds it, the status report."""
