"""bookings bounded context."""
