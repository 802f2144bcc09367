"""Outgoing messages (SMS, email, push) behind one interface, with a sandbox outbox for development."""
