"""NEARX pipelines package."""
