"""What a demo merchant sells, by category: names, price relative to the merchant's typical item,
allergens and dietary tags from the platform's controlled vocabularies, and opening stock."""

from __future__ import annotations

from dataclasses import dataclass

from nearx.dietary import Allergen as A  # noqa: N817 (a menu reads better in short)
from nearx.dietary import DietaryTag as D


@dataclass(frozen=True, slots=True)
class MenuItem:
    name: str
    price_factor: float
    allergens: tuple[A, ...] = ()
    dietary_tags: tuple[D, ...] = ()
    stock: int = 50


VEG = (D.VEGETARIAN,)
MENUS: dict[str, tuple[MenuItem, ...]] = {
    "restaurant": (
        MenuItem("Chicken momo", 1.0, (A.GLUTEN,), (D.NO_PORK, D.NO_BEEF)),
        MenuItem("Veg momo", 0.85, (A.GLUTEN,), VEG),
        MenuItem("Dal bhat set", 1.3, (), (D.VEGETARIAN, D.GLUTEN_FREE)),
        MenuItem("Chicken chow mein", 1.1, (A.GLUTEN, A.SOYBEANS, A.EGGS), (D.NO_PORK,)),
    ),
    "cafe": (
        MenuItem("Masala tea", 0.5, (A.MILK,), VEG),
        MenuItem("Americano", 0.9, (), (D.VEGAN,)),
        MenuItem("Cheese sandwich", 1.4, (A.GLUTEN, A.MILK), VEG),
    ),
    "bakery": (
        MenuItem("Sourdough loaf", 1.5, (A.GLUTEN,), (D.VEGAN,)),
        MenuItem("Butter croissant", 0.8, (A.GLUTEN, A.MILK, A.EGGS), VEG),
        MenuItem("Walnut cake slice", 1.0, (A.GLUTEN, A.TREE_NUTS, A.EGGS, A.MILK), VEG),
    ),
    "grocery": (
        MenuItem("Basmati rice 5 kg", 4.0, (), (D.VEGAN, D.GLUTEN_FREE), 30),
        MenuItem("Fresh milk 1 l", 0.6, (A.MILK,), VEG, 80),
        MenuItem("Free-range eggs, 12", 1.2, (A.EGGS,), (D.EGGETARIAN,), 60),
        MenuItem("Red lentils 1 kg", 0.9, (), (D.VEGAN, D.GLUTEN_FREE), 60),
    ),
    "pharmacy": (
        MenuItem("Paracetamol 500 mg, 10 tablets", 0.3, stock=200),
        MenuItem("Oral rehydration salts", 0.2, stock=200),
        MenuItem("Digital thermometer", 2.5, stock=20),
    ),
    "electronics": (
        MenuItem("USB-C charging cable", 0.4, stock=40),
        MenuItem("Power bank 10000 mAh", 1.5, stock=20),
        MenuItem("Wireless earbuds", 2.5, stock=15),
    ),
}
GENERAL = (MenuItem("House selection", 1.0),)
"""For a category without a menu of its own."""


def menu_for(category: str) -> tuple[MenuItem, ...]:
    return MENUS.get(category, GENERAL)
