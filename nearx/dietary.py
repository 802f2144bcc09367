"""The controlled vocabularies of food: the EU's 14 allergens and dietary tags.

They live in the kernel, not in a bounded context, because several parts of
NEARX must agree on them word for word: the profile service stores a user's
allergen filters, the marketplace labels menu items, the city simulator
generates catalogues and the feature pipelines join the two. ``pipelines/`` and
``features/`` may not import ``api/``, so the one definition sits here.

The allergen list is Annex II of Regulation (EU) No 1169/2011 (food
information to consumers); the values are stable snake_case slugs that are
stored in the database and sent over the API, so never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class Allergen(StrEnum):
    """The 14 substances EU law requires a food business to declare."""

    GLUTEN = "gluten"
    """Cereals containing gluten: wheat, rye, barley, oats, spelt, kamut."""
    CRUSTACEANS = "crustaceans"
    EGGS = "eggs"
    FISH = "fish"
    PEANUTS = "peanuts"
    SOYBEANS = "soybeans"
    MILK = "milk"
    """Milk and milk products, including lactose."""
    TREE_NUTS = "tree_nuts"
    """Almonds, hazelnuts, walnuts, cashews, pecans, Brazil nuts, pistachios, macadamia."""
    CELERY = "celery"
    MUSTARD = "mustard"
    SESAME = "sesame"
    SULPHITES = "sulphites"
    """Sulphur dioxide and sulphites above 10 mg/kg or 10 mg/litre."""
    LUPIN = "lupin"
    MOLLUSCS = "molluscs"


class DietaryTag(StrEnum):
    """Diets a customer can ask the marketplace to respect (and a merchant to label)."""

    VEGETARIAN = "vegetarian"
    VEGAN = "vegan"
    EGGETARIAN = "eggetarian"
    JAIN = "jain"
    HALAL = "halal"
    KOSHER = "kosher"
    PESCATARIAN = "pescatarian"
    GLUTEN_FREE = "gluten_free"
    LACTOSE_FREE = "lactose_free"
    NO_BEEF = "no_beef"
    NO_PORK = "no_pork"
