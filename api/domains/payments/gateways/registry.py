"""Which gateways a process uses: the sandbox and the wallet by default.

Real provider adapters are added only when their credentials are configured,
so the default runtime never reaches the network.
"""

from __future__ import annotations

from api.domains.payments.gateways.base import Gateway
from api.domains.payments.gateways.sandbox import SandboxGateway
from api.domains.payments.gateways.wallet import WalletGateway
from nearx.db import Connection


def default_gateways(conn: Connection) -> dict[str, Gateway]:
    """The gateways bound to one connection (the sandbox and wallet keep their books in PostgreSQL)."""
    return {"sandbox": SandboxGateway(conn), "wallet": WalletGateway(conn)}
