"""The sandbox outbox: messages appended as JSON lines to ``settings.sandbox_outbox_path``.

It lets a developer sign in locally (the code is in the file and in
``nearx sandbox messages``). It refuses to exist in production mode, so a
misconfiguration can never leak real users' codes to a file.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.domains.notifications.templates import Channel, render
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings


class SandboxSender:
    """Append-only: one ``write`` per message with ``O_APPEND``, so workers never interleave lines."""

    def __init__(self, settings: Settings) -> None:
        if settings.mode != "sandbox":
            raise RuntimeError("the sandbox message outbox is only available in sandbox mode")
        self.path = settings.sandbox_outbox_path

    async def send(
        self, *, channel: Channel, destination: str, template: str, params: dict[str, str]
    ) -> None:
        rendered = render(template, channel, params)
        line = json.dumps(
            {
                "id": str(new_id()),
                "sent_at": utc_now().isoformat(),
                "channel": channel,
                "destination": destination,
                "template": template,
                "params": params,
                "subject": rendered.subject,
                "body": rendered.body,
            },
            ensure_ascii=False,
        )
        await asyncio.to_thread(append_line, self.path, line)


def append_line(path: Path, line: str) -> None:
    """Append one line with a single O_APPEND write, so concurrent writers never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True)
class SandboxMessage:
    sent_at: str
    channel: str
    destination: str
    template: str
    subject: str | None
    body: str
    params: dict[str, Any]


def read_messages(path: Path, *, limit: int = 20, destination: str | None = None) -> list[SandboxMessage]:
    """The latest ``limit`` messages (newest first), optionally for one destination."""
    if not path.exists():
        return []
    found: list[SandboxMessage] = []
    for raw in reversed(path.read_text(encoding="utf-8").splitlines()):
        if not raw.strip():
            continue
        item = json.loads(raw)
        if destination is not None and item["destination"] != destination:
            continue
        found.append(
            SandboxMessage(
                sent_at=item["sent_at"],
                channel=item["channel"],
                destination=item["destination"],
                template=item["template"],
                subject=item.get("subject"),
                body=item["body"],
                params=item.get("params", {}),
            )
        )
        if len(found) >= limit:
            break
    return found
