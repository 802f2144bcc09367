"""catalog bounded context."""
