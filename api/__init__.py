"""NEARX transactional API: Litestar controllers per bounded context over PostgreSQL."""
