"""Where a one-time code goes, in one canonical spelling per person.

Phones must be international (``+`` and country code) and valid numbering
plans (libphonenumber via ``phonenumbers``), stored as E.164. Emails are
checked for syntax (``email-validator``, no DNS lookups) and lower-cased, so
``Ana@Example.com`` and ``ana@example.com`` are one account.
"""

from __future__ import annotations

from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from api.errors import InvalidInput

Channel = Literal["sms", "email"]


def normalise(channel: Channel, raw: str) -> str:
    return normalise_phone(raw) if channel == "sms" else normalise_email(raw)


def infer_channel(raw: str) -> Channel:
    """Verification carries only the destination: an ``@`` means email, anything else a phone."""
    return "email" if "@" in raw else "sms"


def normalise_phone(raw: str) -> str:
    text = raw.strip()
    if not text.startswith("+"):
        raise InvalidInput("phone numbers must be in international format, e.g. +9779801234567")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput("not a valid phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"not a valid email address: {exc}") from exc
    return checked.normalized.lower()
