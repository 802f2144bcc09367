"""NEARX serving package."""
