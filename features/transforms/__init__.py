"""Pure Polars feature computations over the lake's tables (no Feast, no Dagster, no I/O)."""
