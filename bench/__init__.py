"""NEARX benchmarks: each module measures a target against its anchors in the same run."""
