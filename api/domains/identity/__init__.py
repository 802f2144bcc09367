"""Identity and access: sign-in (one-time codes, OIDC), sessions, second factor, roles, audit."""
