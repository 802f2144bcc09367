"""User profiles: preferences, consents, addresses, and the user's data rights (export, erasure)."""
