"""The NEARX wallet: stored value per user and currency, kept in the ledger."""
