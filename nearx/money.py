"""Money as integer minor units plus an ISO 4217 currency; never floats."""

from __future__ import annotations

from dataclasses import dataclass

MINOR_UNIT_EXPONENT: dict[str, int] = {
    "NPR": 2,
    "INR": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "JPY": 0,
}
"""Digits after the decimal point for the currencies the platform settles in."""


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class UnknownCurrency(ValueError):
    """The currency code is not one the platform settles in."""


def validate_currency(code: str) -> str:
    """Return the code if the platform supports it, else raise :class:`UnknownCurrency`."""
    if code not in MINOR_UNIT_EXPONENT:
        raise UnknownCurrency(f"unsupported currency {code!r}")
    return code


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units (paisa, cents) of one currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        validate_currency(self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} do not mix")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount_minor * quantity, self.currency)

    def share(self, basis_points: int) -> Money:
        """The given share (1 bp = 0.01%) rounded half-up to the minor unit, e.g. a commission."""
        numerator = self.amount_minor * basis_points
        return Money((numerator + 5_000) // 10_000, self.currency)

    def format(self) -> str:
        """A human-readable amount such as ``NPR 12.50`` (display only; never parse it back)."""
        exponent = MINOR_UNIT_EXPONENT[self.currency]
        sign = "-" if self.amount_minor < 0 else ""
        whole, minor = divmod(abs(self.amount_minor), 10**exponent)
        return f"{self.currency} {sign}{whole}" + (f".{minor:0{exponent}d}" if exponent else "")
