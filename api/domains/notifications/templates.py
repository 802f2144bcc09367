"""Message templates: one wording per template and channel, filled from named parameters.

Keeping the wording here (not in the services) means a sender adapter only
moves bytes, and every channel says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Channel = Literal["sms", "email", "push"]


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str | None
    body: str


@dataclass(frozen=True, slots=True)
class Template:
    body: dict[Channel, str]
    subject: str | None = None


TEMPLATES: dict[str, Template] = {
    "support_alert": Template(
        subject="NEARX support alert",
        body={
            "email": "{title}\n\ncity: {city}\nreference: {reference}\nposition: {where}\nnote: {note}",
            "sms": "NEARX {title} ({city}) ref {reference} at {where}",
        },
    ),
    "otp": Template(
        subject="Your NEARX sign-in code",
        body={
            "sms": "{code} is your NEARX sign-in code. It expires in {minutes} min. Never share it.",
            "email": (
                "Your NEARX sign-in code is {code}.\n\n"
                "It expires in {minutes} minutes. If you did not ask for it, ignore this message."
            ),
        },
    ),
}


class UnknownTemplate(LookupError):
    """No wording exists for this template on this channel."""


def render(template: str, channel: Channel, params: dict[str, str]) -> Rendered:
    """Fill a template; a missing parameter is a programming error and raises ``KeyError``."""
    spec = TEMPLATES.get(template)
    if spec is None or channel not in spec.body:
        raise UnknownTemplate(f"no template {template!r} for channel {channel!r}")
    subject = spec.subject if channel == "email" else None
    return Rendered(subject=subject, body=spec.body[channel].format(**params))
