"""Double-entry ledger: accounts, append-only journal entries, derived balances."""
