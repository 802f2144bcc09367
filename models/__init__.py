"""NEARX models package."""
