"""The one interface every outgoing message goes through, and the choice of adapter.

Services depend on :class:`MessageSender` only. In sandbox mode messages go to
a local JSON-lines outbox a developer can read (``nearx sandbox messages``);
production mode needs a real provider adapter, and until one is configured
:func:`build_sender` refuses to start rather than silently drop sign-in codes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from api.domains.notifications.sandbox import SandboxSender
from api.domains.notifications.templates import Channel
from nearx.settings import Settings


@runtime_checkable
class MessageSender(Protocol):
    async def send(
        self, *, channel: Channel, destination: str, template: str, params: dict[str, str]
    ) -> None:
        """Deliver one templated message, or raise; never drop it silently."""


class MessagingNotConfigured(RuntimeError):
    """Production mode has no real SMS/email/push provider."""


def build_sender(settings: Settings) -> MessageSender:
    """The sender for this deployment: the sandbox outbox in sandbox mode, nothing else yet."""
    if settings.mode == "sandbox":
        return SandboxSender(settings)
    raise MessagingNotConfigured(
        "production mode needs a real SMS/email provider, and none is configured; "
        "the sandbox outbox is for sandbox mode only"
    )
