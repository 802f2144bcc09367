"""Matching: merchants around a customer, ranked by the serving layer's matching model."""
