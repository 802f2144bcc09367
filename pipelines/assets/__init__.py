"""Assets grouped by stage: simulation (source), extract (PostgreSQL), staging (lake), marts (DuckDB)."""
