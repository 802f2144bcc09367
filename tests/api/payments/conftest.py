"""The marketplace fixtures (users with tokens, approved merchants, products), for order-settlement tests."""

from tests.api.marketplace.conftest import admin, make_merchant, make_product, make_user

__all__ = ["admin", "make_merchant", "make_product", "make_user"]
