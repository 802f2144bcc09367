"""The payment-intent lifecycle as data (modelled on Stripe's PaymentIntent).

``TRANSITIONS`` lists every allowed move; anything else is a 409. ``RANK``
orders states by progress so webhooks that arrive out of order never move an
intent backwards (a late "authorized" never overwrites "succeeded").
"""

from __future__ import annotations

from enum import StrEnum


class IntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


S = IntentStatus

TRANSITIONS: dict[IntentStatus, frozenset[IntentStatus]] = {
    S.REQUIRES_PAYMENT_METHOD: frozenset({S.PROCESSING, S.REQUIRES_ACTION, S.CANCELED}),
    # a declined confirmation returns the intent to requires_payment_method, as Stripe does
    # a redirect-based provider (Khalti, eSewa, PhonePe) reports the result after the customer's action
    S.REQUIRES_ACTION: frozenset(
        {S.PROCESSING, S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.CANCELED}
    ),
    S.PROCESSING: frozenset(
        {S.REQUIRES_ACTION, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.REQUIRES_PAYMENT_METHOD, S.CANCELED}
    ),
    # processing again while a capture or void is in flight at the provider
    S.REQUIRES_CAPTURE: frozenset({S.PROCESSING, S.SUCCEEDED, S.CANCELED}),
    S.SUCCEEDED: frozenset(),
    S.CANCELED: frozenset(),
}

RANK: dict[IntentStatus, int] = {
    S.REQUIRES_PAYMENT_METHOD: 0,
    S.REQUIRES_ACTION: 1,
    S.PROCESSING: 2,
    S.REQUIRES_CAPTURE: 3,
    S.SUCCEEDED: 4,
    S.CANCELED: 4,
}

TERMINAL = frozenset({S.SUCCEEDED, S.CANCELED})


def can_transition(current: IntentStatus, target: IntentStatus) -> bool:
    return target in TRANSITIONS[current]
