"""events bounded context."""
