-- Anonymous callers can start OIDC flows: remember where each came from so
-- starts can be rate-limited per client address like one-time codes.
ALTER TABLE oidc_flows ADD COLUMN ip text;
CREATE INDEX oidc_flows_ip ON oidc_flows (ip, created_at DESC);
