"""Cities: the reference data every city-scoped table points at, and point-to-city resolution."""
