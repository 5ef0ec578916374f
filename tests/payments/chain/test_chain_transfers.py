"""Token payments nobody claimed: the monitor finds their ERC-20 ``Transfer`` to the receiving
address in the same logs request as the escrow's events, matches exactly one open payment by
token, amount and time window, and leaves ambiguous transfers to staff. Also: a pass applied in
chunks that fails midway is safe to run again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from orders.audit import Actor
from orders.models import Order, OrderPaymentEvent
from payments.chain import apply as chain_apply
from payments.chain import monitor as chain_monitor
from payments.models import ChainCursor, PaymentTransaction
from payments.providers.chain import client as rpc
from payments.services.payments import payment_claim_transaction
from tests.payments.chain.conftest import CONFIRMATIONS, chain_order, reload, start_payment

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def events(payment, action: str) -> int:  # type: ignore[no-untyped-def]
    return OrderPaymentEvent.objects.filter(payment_id=payment.id, action=action).count()


def pay_tokens(env, units: int) -> str:  # type: ignore[no-untyped-def]
    env.mint(env.payer, units)
    return env.send(env.payer, env.token, 0, rpc.erc20_transfer_data(env.receiving, units))


def test_unclaimed_token_payment_is_found_by_its_transfer_and_confirmed(chain_env, buyer, seller):
    order = chain_order(buyer, seller, "USDC", "12.5")
    payment = start_payment(order, "crypto")
    chain_env.mint(chain_env.payer, 12_500_000)
    (tx_hash,) = chain_env.send_requests(payment)  # the buyer pays and never claims

    report = chain_env.poll()
    payment = reload(payment)
    assert report.matched == 1 and report.ambiguous == 0
    assert payment.status == "processing" and payment.transaction_hash == tx_hash
    assert payment.sender_address == chain_env.payer.lower()
    assert payment.block_number and payment.block_hash and payment.gas_used > 0
    assert payment.provider_data["matched_by"] == "transfer_log"
    assert payment.review_status == "none"
    # one HTTP request for both log filters (escrow events + token transfers), one receipt batch
    assert report.methods["eth_getLogs"] == 2
    assert report.http_requests == 4

    chain_env.node.mine(CONFIRMATIONS)
    report = chain_env.poll()
    payment = reload(payment)
    assert report.confirmed == 1 and payment.status == "confirmed"
    assert Order.objects.get(pk=order.id).status == "paid"
    report = chain_env.poll()  # the transfer is still in the re-read range: nothing happens
    assert report.matched == 0
    assert events(payment, "confirm") == 1
    # the buyer claiming the same hash afterwards changes nothing
    again = payment_claim_transaction(
        payment_id=payment.id, transaction_hash=tx_hash, chain_id=None, actor=Actor.for_user(buyer)
    )
    assert again.status == "confirmed" and events(payment, "confirm") == 1


def test_two_payments_of_the_same_amount_are_not_guessed(chain_env, buyer, seller, staff):
    first = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    second = start_payment(chain_order(staff, seller, "USDC", "10"), "crypto")
    tx_hash = pay_tokens(chain_env, 10_000_000)

    report = chain_env.poll()
    assert report.matched == 0 and report.ambiguous == 1
    for p in (first, second):
        p = reload(p)
        assert p.status == "pending" and p.transaction_hash is None
        assert p.review_status == "flagged"
        (flag,) = p.review_reasons
        assert flag["reason"] == "ambiguous_transfer"
        assert flag["details"]["transaction_hash"] == tx_hash
        assert sorted(flag["details"]["candidates"]) == sorted([str(first.id), str(second.id)])
    chain_env.poll()  # read again while not final: still nobody guessed, flagged once
    assert reload(first).transaction_hash is None and len(reload(first).review_reasons) == 1

    # the buyer who paid claims it: verified like any claim; the other stays open
    payment_claim_transaction(
        payment_id=second.id, transaction_hash=tx_hash, chain_id=None, actor=Actor.for_user(staff)
    )
    chain_env.node.mine(CONFIRMATIONS)
    chain_env.poll()
    assert reload(second).status == "confirmed" and events(second, "confirm") == 1
    assert reload(first).status == "pending" and reload(first).transaction_hash is None


def test_transfers_that_do_not_fit_are_not_matched(chain_env, buyer, seller, staff):
    wrong_amount = start_payment(chain_order(buyer, seller, "USDC", "7"), "crypto")
    late = start_payment(chain_order(staff, seller, "USDC", "8"), "crypto")
    PaymentTransaction.objects.filter(pk=late.id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    pay_tokens(chain_env, 7_000_001)  # one base unit too many
    pay_tokens(chain_env, 8_000_000)  # after the payment expired
    # the right amount of ETH (no log): only a claim can find it
    eth = start_payment(chain_order(buyer, staff, "ETH", "0.25"), "crypto")
    chain_env.send_requests(eth)

    report = chain_env.poll()
    assert report.matched == 0 and report.ambiguous == 0
    assert reload(wrong_amount).transaction_hash is None
    assert reload(wrong_amount).status == "pending"
    assert reload(late).transaction_hash is None and reload(late).status == "expired"
    assert reload(eth).transaction_hash is None and reload(eth).status == "pending"


def test_a_pass_failing_midway_is_safe_to_run_again(chain_env, buyer, seller, monkeypatch):
    started = [start_payment(chain_order(buyer, seller, "ETH", "0.1"), "crypto") for _ in range(5)]
    chain_env.node.set_automine(False)  # all five in one block
    hashes = [
        chain_env.send(chain_env.payer, chain_env.receiving, 10**17, gas=21000) for _ in started
    ]
    chain_env.node.mine(1)
    payments = [
        payment_claim_transaction(
            payment_id=p.id, transaction_hash=h, chain_id=None, actor=Actor.for_user(buyer)
        )
        for p, h in zip(started, hashes, strict=True)
    ]
    chain_env.poll()
    assert {reload(p).status for p in payments} == {"processing"}
    cursor = ChainCursor.objects.get(chain_id=chain_env.chain_id).block_number
    chain_env.node.mine(CONFIRMATIONS)

    monkeypatch.setattr(chain_apply, "CHUNK_SIZE", 2)
    real = chain_apply.payments_move_many
    calls = {"n": 0}

    def flaky(moves, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the second chunk
            raise OperationalError("database went away")
        return real(moves, **kwargs)

    monkeypatch.setattr(chain_apply, "payments_move_many", flaky)
    with pytest.raises(OperationalError):
        chain_monitor.chain_poll(chain_env.chain_id, ignore_backoff=True)
    statuses = sorted(reload(p).status for p in payments)
    assert statuses == ["confirmed"] * 2 + ["processing"] * 3  # the first chunk committed
    assert ChainCursor.objects.get(chain_id=chain_env.chain_id).block_number == cursor

    report = chain_env.poll()  # the re-run finishes the work, crediting nothing twice
    assert report.confirmed == 3
    for p in payments:
        assert reload(p).status == "confirmed" and events(p, "confirm") == 1
    assert ChainCursor.objects.get(chain_id=chain_env.chain_id).block_number > cursor


def test_a_hash_held_by_another_payment_flags_and_keeps_the_chunk_usable(chain_env, buyer, seller):
    first = start_payment(chain_order(buyer, seller, "ETH", "0.1"), "crypto")
    second = start_payment(chain_order(buyer, seller, "ETH", "0.1"), "crypto")
    (tx_hash,) = chain_env.send_requests(first)
    payment_claim_transaction(
        payment_id=first.id, transaction_hash=tx_hash, chain_id=None, actor=Actor.for_user(buyer)
    )
    result = chain_apply.ProviderResult(
        chain_apply.Outcome.PROCESSING, fields={"transaction_hash": tx_hash}
    )
    actor = Actor.for_job("test")
    with transaction.atomic():  # as inside one chunk of a pass
        assert not chain_apply._savepoint_apply(second.id, result, actor)
        assert PaymentTransaction.objects.filter(transaction_hash=tx_hash).count() == 1
    second = reload(second)
    assert second.transaction_hash is None and second.status == "pending"
    assert second.review_reasons[0]["reason"] == "transaction_hash_conflict"
