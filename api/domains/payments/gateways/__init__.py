"""Payment providers behind one interface (:mod:`api.domains.payments.gateways.base`)."""
