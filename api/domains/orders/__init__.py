"""orders bounded context."""
