"""The chain registry: per chain id its RPC URL, confirmations, accepted assets, escrow
and payment contracts, receiving address and (from the environment only) the platform's keys.

Built from ``settings.CHAINS`` (a list of dicts; the default chain comes from ``CHAIN_*`` env
variables, more from ``CHAINS_JSON``). Keys are never part of ``repr`` and never logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from common.errors import ValidationFailed

NATIVE = "native"
#: Where ``deploy_contracts`` writes a development chain's addresses (chain 31337 only).
DEV_DEPLOYMENT_CHAIN_ID = 31337


@dataclass(frozen=True)
class Asset:
    symbol: str  # the order currency it pays (ETH, USDC ...)
    decimals: int
    address: str | None = None  # None: the chain's native coin

    @property
    def is_native(self) -> bool:
        return self.address is None


@dataclass(frozen=True)
class ChainConfig:
    chain_id: int
    rpc_url: str
    required_confirmations: int
    native_symbol: str = "ETH"
    assets: tuple[Asset, ...] = ()
    escrow_contract: str = ""
    #: 1: Escrow.vy; 2: EscrowV2.vy (deposits with an operator-signed intent naming the payer,
    #: the buyer's reclaim after the authorization expiry, a separate arbiter). New escrows use
    #: this contract; open ones stay on the contract (and version) they were made with.
    escrow_version: int = 1
    #: how long after its deposit an EscrowV2 escrow may still be released by the operator;
    #: after it the buyer may reclaim what it holds
    escrow_authorization_seconds: int = 30 * 24 * 3600
    #: the Payments contract new crypto payments are paid through (signed intents)
    payment_contract: str = ""
    #: the DepositFactory whose CREATE2 forwarders give each crypto payment its own address
    #: (and the forwarder implementation its proxies delegate to: the address depends on it)
    deposit_factory: str = ""
    deposit_implementation: str = ""
    #: create new crypto payments the old way (a plain transfer to ``receiving_address``,
    #: attributed by the claimed hash and the payer's wallet) where no payment contract is set.
    #: Only for a chain still migrating: nothing binds such a transfer to its payment.
    legacy_transfers: bool = False
    receiving_address: str = ""
    tolerance_base_units: int = 0
    #: blocks below the head the monitor stops at (0: read up to the head)
    lag: int = 0
    #: how many recent block hashes the monitor re-checks each pass
    reorg_window: int = 64
    max_blocks_per_pass: int = 2000
    #: a claimed hash the node never saw fails after this many seconds
    claim_timeout_seconds: int = 3600
    operator_key: str = field(default="", repr=False, compare=False)
    #: EscrowV2's arbiter (resolves disputes); Escrow.vy's arbiter is the operator
    arbiter_key: str = field(default="", repr=False, compare=False)
    payout_key: str = field(default="", repr=False, compare=False)

    def asset_for_currency(self, currency: str) -> Asset:
        for asset in self.assets:
            if asset.symbol == currency.upper():
                return asset
        raise ValidationFailed(
            f"Chain {self.chain_id} does not accept {currency}.",
            code="unsupported_currency",
            details={"chain_id": self.chain_id, "accepted": [a.symbol for a in self.assets]},
        )

    def asset_for_token(self, token_address: str | None) -> Asset | None:
        for asset in self.assets:
            if (asset.address or "").lower() == (token_address or "").lower():
                return asset
        return None


def parse_tokens(value: Any) -> list[dict[str, Any]]:
    """``ACCEPTED_TOKENS``: JSON list of {symbol, address, decimals}, or
    ``SYMBOL:0xADDRESS:DECIMALS,...``."""
    if not value:
        return []
    if isinstance(value, list):
        return value
    text = str(value).strip()
    if text.startswith("["):
        return list(json.loads(text))
    tokens = []
    for part in text.split(","):
        symbol, address, decimals = (p.strip() for p in part.split(":"))
        tokens.append({"symbol": symbol, "address": address, "decimals": int(decimals)})
    return tokens


def _dev_deployment(chain_id: int) -> dict[str, Any]:
    path = Path(getattr(settings, "CHAIN_DEV_DEPLOYMENT_FILE", "") or "")
    if chain_id != DEV_DEPLOYMENT_CHAIN_ID or not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _build(raw: dict[str, Any]) -> ChainConfig:
    chain_id = int(raw["chain_id"])
    dev = _dev_deployment(chain_id)
    native_symbol = str(raw.get("native_symbol", "ETH")).upper()
    assets = [Asset(native_symbol, int(raw.get("native_decimals", 18)))]
    tokens = parse_tokens(raw.get("tokens")) or parse_tokens(dev.get("tokens"))
    for token in tokens:
        assets.append(
            Asset(
                str(token["symbol"]).upper(),
                int(token["decimals"]),
                str(token["address"]).lower(),
            )
        )
    # keys: inline for the default chain (read from env by settings), else named env variables
    operator_key = raw.get("operator_key") or os.environ.get(raw.get("operator_key_env", ""), "")
    payout_key = raw.get("payout_key") or os.environ.get(raw.get("payout_key_env", ""), "")
    arbiter_key = raw.get("arbiter_key") or os.environ.get(raw.get("arbiter_key_env", ""), "")
    return ChainConfig(
        chain_id=chain_id,
        rpc_url=str(raw.get("rpc_url", "")),
        required_confirmations=max(1, int(raw.get("required_confirmations", 12))),
        native_symbol=native_symbol,
        assets=tuple(assets),
        escrow_contract=str(raw.get("escrow_contract") or dev.get("escrow_contract", "")).lower(),
        escrow_version=int(
            raw.get("escrow_version")
            or (dev.get("escrow_version", 1) if not raw.get("escrow_contract") else 1)
        ),
        escrow_authorization_seconds=int(raw.get("escrow_authorization_seconds") or 30 * 24 * 3600),
        payment_contract=str(
            raw.get("payment_contract") or dev.get("payment_contract", "")
        ).lower(),
        legacy_transfers=_flag(raw.get("legacy_transfers")),
        deposit_factory=str(raw.get("deposit_factory") or dev.get("deposit_factory", "")).lower(),
        deposit_implementation=str(
            raw.get("deposit_implementation") or dev.get("deposit_implementation", "")
        ).lower(),
        receiving_address=str(raw.get("receiving_address", "")).lower(),
        tolerance_base_units=int(raw.get("tolerance_base_units", 0)),
        lag=int(raw.get("lag", 0)),
        reorg_window=max(1, int(raw.get("reorg_window", 64))),
        max_blocks_per_pass=max(1, int(raw.get("max_blocks_per_pass", 2000))),
        claim_timeout_seconds=int(raw.get("claim_timeout_seconds", 3600)),
        operator_key=str(operator_key or ""),
        payout_key=str(payout_key or ""),
        arbiter_key=str(arbiter_key or ""),
    )


def all_chains() -> list[ChainConfig]:
    """Every configured chain (with an RPC URL), default first."""
    seen: dict[int, ChainConfig] = {}
    for raw in getattr(settings, "CHAINS", []):
        if raw.get("chain_id") and raw.get("rpc_url"):
            config = _build(raw)
            seen.setdefault(config.chain_id, config)
    return list(seen.values())


def default_chain() -> ChainConfig:
    chains = all_chains()
    if not chains:
        raise ValidationFailed("No chain is configured.", code="chain_not_configured")
    return chains[0]


def get_chain(chain_id: int | None) -> ChainConfig:
    if chain_id is None:
        return default_chain()
    for chain in all_chains():
        if chain.chain_id == int(chain_id):
            return chain
    raise ValidationFailed(
        f"Chain {chain_id} is not configured.",
        code="unsupported_chain",
        details={"chain_id": chain_id},
    )
