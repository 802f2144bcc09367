"""The seeded, vectorised city simulator: plain functions that the assets, CLI and bench call."""
