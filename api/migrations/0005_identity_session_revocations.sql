-- The API workers' revocation lists poll "sessions revoked after t" every second or so
-- (api/security/revocations.py): a partial index over revoked sessions only, carrying the id,
-- keeps that a short range scan (index-only once vacuumed) however many live sessions there are.
-- depends: 0003_identity_auth
CREATE INDEX auth_sessions_revoked ON auth_sessions (revoked_at) INCLUDE (id) WHERE revoked_at IS NOT NULL;
