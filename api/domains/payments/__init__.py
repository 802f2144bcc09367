"""Payment orchestration: intents, gateways, webhooks, refunds, split settlement."""
