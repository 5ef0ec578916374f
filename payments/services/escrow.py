"""Platform operations on chain payments: escrow release, refund, dispute and resolution, crypto
refunds, and the transactions the platform sends (nonces, EIP-1559 fees, tracking).

The API views and the admin call these; the monitor (``payments.chain``) sees their effects on
chain and moves payments and refunds only once the transactions have their confirmations.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, NotFound, ProviderUnavailable, ValidationFailed
from common.money import add, parse_amount, sub
from orders.audit import Actor, record_event
from orders.models import Order
from orders.services import order_lock
from payments.models import (
    ChainTransaction,
    PaymentMethod,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from payments.providers.base import Outcome, ProviderError, ProviderResult
from payments.providers.chain import client as rpc
from payments.providers.chain.provider import asset_units, tx_request
from payments.providers.chain.registry import ChainConfig, get_chain
from payments.services.chain_tx import Prepared, chain_prepare, chain_record
from payments.services.core import transaction_hash_clean
from payments.services.disputes import payment_open_dispute
from payments.services.refunds import payment_refund, refund_apply_result

P = PaymentStatus
CT = ChainTransaction


def refund_record_transaction(
    *, refund_id: UUID, transaction_hash: str, actor: Actor
) -> ChainTransaction:
    """Support sent a crypto refund by hand: record its hash; the monitor verifies it (to the
    payer, the refund's exact amount) and settles the refund at its confirmations."""
    tx_hash = transaction_hash_clean(transaction_hash)
    refund = Refund.objects.select_related("payment").filter(pk=refund_id).first()
    if refund is None:
        raise NotFound("Refund not found.", code="refund_not_found")
    payment = refund.payment
    if payment.method != PaymentMethod.CRYPTO or refund.status != RefundStatus.PENDING:
        raise Conflict("This refund does not wait for a transaction.", code="refund_not_manual")
    chain = get_chain(payment.chain_id)
    token = payment.token_address or ""
    with transaction.atomic():
        if CT.objects.filter(chain_id=chain.chain_id, transaction_hash=tx_hash).exists() or (
            PaymentTransaction.objects.filter(transaction_hash=tx_hash).exists()
        ):
            raise Conflict(
                "This transaction is recorded already.", code="transaction_hash_already_used"
            )
        recorded = CT.objects.create(
            chain_id=chain.chain_id,
            purpose=CT.Purpose.MANUAL_REFUND,
            payment=payment,
            refund=refund,
            to_address=token or payment.sender_address,
            value_base_units=asset_units(chain, payment.token_address, refund.amount),
            transaction_hash=tx_hash,
        )
        record_event(
            order_id=payment.order_id,
            entity="refund",
            action="record_transaction",
            actor=actor,
            payment_id=payment.id,
            refund_id=refund.id,
            details={"transaction_hash": tx_hash},
        )
    refund_apply_result(
        refund_id=refund.id,
        actor=actor,
        result=ProviderResult(Outcome.PENDING, reference=tx_hash, raw_status="recorded"),
    )
    return recorded


# --- escrow -----------------------------------------------------------------------------
def _escrow_payment(order: Order, states: tuple[str, ...]) -> PaymentTransaction:
    payment = (
        PaymentTransaction.objects.filter(
            order=order, method=PaymentMethod.ESCROW, status__in=states
        )
        .order_by("-created_at")
        .first()
    )
    if payment is None:
        raise Conflict(
            "The order has no escrow payment in a state that allows this.",
            code="no_escrow_payment",
            details={"order_status": order.status},
        )
    return payment


def _operator(chain: ChainConfig) -> str:
    if not chain.operator_key:
        raise Conflict("No escrow operator key is configured.", code="operator_key_missing")
    return chain.operator_key


def _authorized(payment: PaymentTransaction) -> None:
    """EscrowV2 lets the operator release, and the parties dispute, only until the intent's
    authorization expiry; after it the buyer alone may release or reclaim. Say so plainly
    rather than sending a call the contract refuses."""
    intent = payment.provider_data.get("intent") or {}
    expiry = (
        intent.get("authorization_expiry")
        if payment.provider_data.get("escrow_version") == 2
        else None
    )
    if expiry is not None and timezone.now().timestamp() > int(expiry):
        raise Conflict(
            "The escrow's authorization expired: only the buyer can release or reclaim it now.",
            code="escrow_authorization_expired",
            details={"authorization_expiry": int(expiry)},
        )


def _arbiter(chain: ChainConfig, payment: PaymentTransaction) -> str:
    """Who resolves: EscrowV2's own arbiter key; Escrow.vy's arbiter is the operator."""
    if int(payment.provider_data.get("escrow_version") or 1) < 2:
        return _operator(chain)
    if not chain.arbiter_key:
        raise Conflict("No escrow arbiter key is configured.", code="arbiter_key_missing")
    return chain.arbiter_key


def _prepare(
    chain: ChainConfig, payment: PaymentTransaction, data: str, key: str | None = None
) -> Prepared:
    """An operator (or arbiter) call to the payment's escrow contract, its RPC part done
    (call before any lock)."""
    try:
        return chain_prepare(
            chain=chain,
            private_key=key or _operator(chain),
            to=payment.contract_address,
            data=data,
        )
    except ProviderError as exc:
        raise Conflict(str(exc), code=exc.code) from exc
    except (rpc.RpcError, rpc.RpcUnavailable) as exc:
        raise ProviderUnavailable(str(exc)) from exc


def _release_in_progress(payment: PaymentTransaction) -> None:
    if CT.objects.filter(
        payment=payment,
        purpose=CT.Purpose.RELEASE,
        status__in=[CT.Status.SENT, CT.Status.MINED],
    ).exists():
        raise Conflict("The release is on its way.", code="release_in_progress")


def _order(order_id: UUID) -> Order:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.", code="order_not_found")
    return order


def escrow_release(*, order_id: UUID, actor: Actor) -> ChainTransaction:
    """Release the held funds (all, or what a partial refund left) to the seller through the
    operator key (the buyer confirmed delivery). The payment completes when the monitor sees
    the ``Released`` event final.

    The node is asked (gas, fees, nonce) before the order's row lock is taken; under the lock
    the payment is checked again and the signed transaction recorded; it is broadcast after
    the commit (no network call under a row lock)."""
    states = (P.CONFIRMED, P.PARTIALLY_REFUNDED)
    seen = _escrow_payment(_order(order_id), states)
    _authorized(seen)
    _release_in_progress(seen)
    chain = get_chain(seen.chain_id)
    prepared = _prepare(chain, seen, rpc.escrow_call_data("release", str(seen.escrow_id)))
    with transaction.atomic():
        order = order_lock(order_id)
        payment = _escrow_payment(order, states)
        if payment.id != seen.id:
            raise Conflict("The order's escrow payment changed; try again.", code="conflict")
        _release_in_progress(payment)
        sent = chain_record(prepared, payment_id=payment.id, purpose=CT.Purpose.RELEASE)
        record_event(
            order_id=order.id,
            entity="payment",
            action="release_requested",
            actor=actor,
            payment_id=payment.id,
            details={"transaction_hash": sent.transaction_hash},
        )
    return sent


def escrow_refund(*, order_id: UUID, actor: Actor, amount: Any = None, reason: str = "") -> Refund:
    """Refund the buyer in full or in part (the same ``payment_refund`` the API and admin use)."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.", code="order_not_found")
    payment = _escrow_payment(order, (P.CONFIRMED, P.PARTIALLY_REFUNDED))
    return payment_refund(
        order_id=order.id, payment_id=payment.id, actor=actor, amount=amount, reason=reason
    )


def escrow_open_dispute(*, order_id: UUID, actor: Actor, reason: str = "") -> dict[str, Any]:
    """Freeze the platform's side at once (payment and order disputed) and hand the caller the
    on-chain ``dispute`` call their wallet may send (only buyer or seller can)."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.", code="order_not_found")
    payment = _escrow_payment(order, (P.CONFIRMED, P.PARTIALLY_REFUNDED, P.DISPUTED))
    _authorized(payment)
    payment = payment_open_dispute(
        payment_id=payment.id, actor=actor, details={"reason": reason[:500]}
    )
    return {
        "payment": payment,
        "transaction_request": tx_request(
            payment.contract_address,
            0,
            rpc.escrow_call_data("dispute", str(payment.escrow_id)),
            "open the dispute on chain",
        ),
    }


def escrow_resolve(
    *, order_id: UUID, buyer_amount: Any, seller_amount: Any, actor: Actor
) -> list[ChainTransaction]:
    """The arbiter's split of a disputed escrow. Disputed on chain: the contract's ``resolve``;
    disputed only here: the operator refunds the buyer's part and releases the rest."""
    seen = _escrow_payment(_order(order_id), (P.DISPUTED,))
    if escrow_state(get_chain(seen.chain_id), seen.contract_address, str(seen.escrow_id)) != 2:
        _authorized(seen)  # not disputed on chain: the operator's calls settle it
    chain = get_chain(seen.chain_id)
    buyer = parse_amount(buyer_amount, seen.currency, allow_zero=True)
    seller = parse_amount(seller_amount, seen.currency, allow_zero=True)
    _check_split(seen, buyer, seller)
    b_units, s_units = (
        asset_units(chain, seen.token_address, buyer),
        asset_units(chain, seen.token_address, seller),
    )
    # the network part first, before the order's row lock: the contract's state, gas, fees
    escrow_id = str(seen.escrow_id)
    calls: list[tuple[str, str]] = []
    if escrow_state(chain, seen.contract_address, escrow_id) == 2:  # DISPUTED on chain
        calls.append(
            (CT.Purpose.RESOLVE, rpc.escrow_call_data("resolve", escrow_id, b_units, s_units))
        )
    else:
        if b_units:
            calls.append((CT.Purpose.REFUND, rpc.escrow_call_data("refund", escrow_id, b_units)))
        if s_units:
            calls.append((CT.Purpose.RELEASE, rpc.escrow_call_data("release", escrow_id)))
    # two calls on one escrow: the second's gas is estimated against the state before the
    # first (a refund of part leaves the release valid)
    prepared = [
        (
            purpose,
            _prepare(
                chain, seen, data, _arbiter(chain, seen) if purpose == CT.Purpose.RESOLVE else None
            ),
        )
        for purpose, data in calls
    ]
    with transaction.atomic():
        order = order_lock(order_id)
        payment = _escrow_payment(order, (P.DISPUTED,))
        if payment.id != seen.id:
            raise Conflict("The order's escrow payment changed; try again.", code="conflict")
        _check_split(payment, buyer, seller)  # nothing refunded since it was read
        sent = [chain_record(p, payment_id=payment.id, purpose=purpose) for purpose, p in prepared]
        record_event(
            order_id=order.id,
            entity="payment",
            action="resolve_requested",
            actor=actor,
            payment_id=payment.id,
            details={
                "buyer_amount": str(buyer),
                "seller_amount": str(seller),
                "transactions": [s.transaction_hash for s in sent],
            },
        )
    return sent


def _check_split(payment: PaymentTransaction, buyer: Decimal, seller: Decimal) -> None:
    room = sub(payment.amount, payment.refunded_amount)
    if add(buyer, seller) != room:
        raise ValidationFailed(
            "The two parts must add up to what the escrow holds.",
            code="split_mismatch",
            details={"remaining": str(room)},
        )


def escrow_state(chain: ChainConfig, contract: str, escrow_id: str) -> int:
    """The state of ``escrow_id`` on the escrow ``contract`` it was made on (0 none, 1 funded,
    2 disputed, 3 closed; the eighth word of ``get_escrow`` in both versions)."""
    data = rpc.escrow_call_data("get_escrow", escrow_id)
    try:
        out = rpc.client_for(chain.rpc_url).eth_call(contract or chain.escrow_contract, data)
    except (rpc.RpcError, rpc.RpcUnavailable) as exc:
        raise ProviderUnavailable(str(exc)) from exc
    return rpc.to_int("0x" + out[2:][7 * 64 : 8 * 64])
