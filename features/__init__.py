"""NEARX features package."""
