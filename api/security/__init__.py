"""Who is calling: access tokens, the authenticated principal, and route guards."""
