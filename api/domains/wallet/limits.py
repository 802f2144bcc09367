"""Per-user wallet limits by KYC tier (minor units of the wallet's currency).

Tier 0 is a phone-verified user, tier 1 has an ID document checked, tier 2
full KYC. The figures follow the shape of Nepal Rastra Bank's and RBI's
prepaid-instrument rules (small unverified balances) and are configuration,
not law: change them here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WalletLimits:
    max_balance_minor: int
    max_top_up_minor: int


LIMITS_BY_TIER: dict[int, WalletLimits] = {
    0: WalletLimits(max_balance_minor=10_000_00, max_top_up_minor=5_000_00),
    1: WalletLimits(max_balance_minor=100_000_00, max_top_up_minor=25_000_00),
    2: WalletLimits(max_balance_minor=500_000_00, max_top_up_minor=100_000_00),
}
