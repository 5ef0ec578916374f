"""Direct crypto payments on a real anvil: instructions, verified claims, confirmations
through the monitor, rejected and flagged claims, reorgs, webhooks, expiry and backoff."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from orders.audit import Actor
from orders.models import Order, OrderPaymentEvent
from payments.chain.monitor import chain_poll, chain_poll_all
from payments.models import PaymentTransaction, WebhookEvent
from payments.providers.chain import client as rpc
from payments.webhooks.chain import sign
from payments.webhooks.inbox import WebhookSignatureError, webhook_receive
from tests.payments.chain.conftest import (
    CONFIRMATIONS,
    PAYER,
    chain_order,
    claim,
    reload,
    start_payment,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_native_payment_instructions_claim_and_confirmation(chain_env, buyer, seller):
    order = chain_order(buyer, seller, "ETH", "0.5")
    payment = start_payment(order, "crypto")
    instructions = payment.provider_data["instructions"]
    assert instructions["chain_id"] == chain_env.chain_id
    assert instructions["token_address"] is None and instructions["decimals"] == 18
    assert instructions["amount_base_units"] == str(5 * 10**17)
    assert instructions["expires_at"]
    (request,) = instructions["transaction_requests"]
    assert request == {**request, "to": chain_env.receiving.lower(), "value": str(5 * 10**17)}

    (tx_hash,) = chain_env.send_requests(payment)
    payment = claim(payment, tx_hash, chain_env.chain_id)
    assert payment.status == "processing"
    assert payment.sender_address == chain_env.payer.lower()
    assert payment.block_number and payment.block_hash and payment.gas_used == 21000
    assert payment.effective_gas_price > 0 and payment.confirmations == 1
    assert payment.review_status == "none"

    chain_env.poll()
    assert reload(payment).status == "processing"
    chain_env.node.mine(CONFIRMATIONS - 1)
    report = chain_env.poll()
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.confirmations == CONFIRMATIONS
    assert report.confirmed == 1
    assert Order.objects.get(pk=order.id).status == "paid"
    chain_env.poll()  # nothing more happens
    confirms = OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count()
    assert confirms == 1


def test_erc20_payment_verified_from_transfer_log(chain_env, buyer, seller):
    order = chain_order(buyer, seller, "USDC", "25.50")
    payment = start_payment(order, "crypto")
    instructions = payment.provider_data["instructions"]
    assert instructions["token_address"] == chain_env.token.lower()
    assert instructions["decimals"] == 6 and instructions["amount_base_units"] == "25500000"
    chain_env.mint(chain_env.payer, 25_500_000)
    (tx_hash,) = chain_env.send_requests(payment)
    chain_env.node.mine(CONFIRMATIONS)
    payment = claim(payment, tx_hash)
    assert payment.status == "confirmed"  # deep enough at claim time
    assert payment.amount_base_units == 25_500_000 and payment.review_status == "none"
    assert chain_env.token_balance(chain_env.receiving) == 25_500_000
    assert Order.objects.get(pk=order.id).status == "paid"


def test_wrong_recipient_is_rejected(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller), "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.node.accounts[7], 5 * 10**17)
    with pytest.raises(ValidationFailed) as err:
        claim(payment, tx_hash)
    assert err.value.code == "wrong_recipient"
    assert reload(payment).status == "pending" and reload(payment).transaction_hash is None


def test_wrong_token_is_rejected_both_ways(chain_env, buyer, seller, staff):
    usdc = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    eth_hash = chain_env.send(chain_env.payer, chain_env.receiving, 10_000_000)
    with pytest.raises(ValidationFailed) as err:
        claim(usdc, eth_hash)
    assert err.value.code == "wrong_token"

    eth = start_payment(chain_order(buyer, staff, "ETH", "1"), "crypto")
    chain_env.mint(chain_env.payer, 10**6)
    token_hash = chain_env.send(
        chain_env.payer, chain_env.token, 0, rpc.erc20_transfer_data(chain_env.receiving, 10**6)
    )
    with pytest.raises(ValidationFailed) as err:
        claim(eth, token_hash)
    assert err.value.code == "wrong_token"


@pytest.mark.parametrize("mined", [False, True], ids=["pending", "mined"])
def test_wrong_asset_verdict_does_not_depend_on_the_receipt(chain_env, buyer, seller, mined):
    """The same code whether or not the claimed transaction has a receipt yet."""
    chain_env.mint(chain_env.payer, 10**6 + 1)
    chain_env.node.set_automine(mined)
    eth = start_payment(chain_order(buyer, seller, "ETH", "1"), "crypto")
    token_hash = chain_env.send(
        chain_env.payer, chain_env.token, 0, rpc.erc20_transfer_data(chain_env.receiving, 10**6)
    )
    elsewhere = chain_env.send(
        chain_env.payer, chain_env.token, 0, rpc.erc20_transfer_data(chain_env.seller_wallet, 1)
    )
    usdc = start_payment(chain_order(buyer, seller, "USDC", "1"), "crypto")
    codes = []
    for payment, tx_hash in ((eth, token_hash), (usdc, elsewhere)):
        with pytest.raises(ValidationFailed) as err:
            claim(payment, tx_hash)
        codes.append(err.value.code)
    assert codes == ["wrong_token", "wrong_recipient"]


def test_wrong_amount_is_accepted_and_flagged_with_the_amounts(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 4 * 10**17)
    payment = claim(payment, tx_hash)
    assert payment.status == "processing" and payment.review_status == "flagged"
    (flag,) = payment.review_reasons
    assert flag["reason"] == "underpayment"
    assert flag["details"]["expected_base_units"] == str(5 * 10**17)
    assert flag["details"]["received_base_units"] == str(4 * 10**17)


def test_a_short_payment_never_confirms_however_deep(chain_env, buyer, seller):
    order = chain_order(buyer, seller, "ETH", "0.05")
    payment = start_payment(order, "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 1)  # 1 wei
    payment = claim(payment, tx_hash)
    chain_env.node.mine(CONFIRMATIONS + 2)
    chain_env.poll()
    payment = reload(payment)
    assert (payment.status, payment.review_status) == ("processing", "flagged")
    assert payment.provider_status == "underpaid"
    assert Order.objects.get(pk=order.id).status != "paid"
    assert not OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").exists()


def test_tolerance_setting_accepts_small_differences(chain_env, buyer, seller, settings):
    settings.CHAINS = [{**settings.CHAINS[0], "tolerance_base_units": 1000}]
    payment = start_payment(chain_order(buyer, seller, "ETH", "0.5"), "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17 + 999)
    assert claim(payment, tx_hash).review_status == "none"


def test_reverted_transaction_is_rejected(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    # the payer holds no tokens: the transfer reverts (gas given, so nothing estimates first)
    tx_hash = chain_env.send(
        chain_env.payer,
        chain_env.token,
        0,
        rpc.erc20_transfer_data(chain_env.receiving, 10_000_000),
        gas=100_000,
    )
    with pytest.raises(ValidationFailed) as err:
        claim(payment, tx_hash)
    assert err.value.code == "transaction_reverted"


def test_wrong_chain_and_unknown_hash_are_rejected(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller), "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17)
    with pytest.raises(ValidationFailed) as err:
        claim(payment, tx_hash, chain_id=1)
    assert err.value.code == "wrong_chain"
    with pytest.raises(ValidationFailed) as err:
        claim(payment, "0x" + "ab" * 32)
    assert err.value.code == "transaction_not_found"


def test_same_hash_cannot_pay_two_payments(chain_env, buyer, seller, staff):
    first = start_payment(chain_order(buyer, seller), "crypto")
    second = start_payment(chain_order(buyer, staff), "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17)
    claim(first, tx_hash)
    with pytest.raises(Conflict) as err:
        claim(second, tx_hash)
    assert err.value.code == "transaction_hash_already_used"
    assert reload(second).transaction_hash is None


def test_reorg_before_depth_drops_then_confirms_exactly_once(chain_env, buyer, seller):
    node, w3 = chain_env.node, chain_env.w3
    payment = start_payment(chain_order(buyer, seller), "crypto")
    payer = node.local_account(3)
    raw = payer.sign_transaction(
        {
            "to": w3.to_checksum_address(chain_env.receiving),
            "value": 5 * 10**17,
            "gas": 21000,
            "maxFeePerGas": 100 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": w3.eth.get_transaction_count(payer.address),
            "chainId": chain_env.chain_id,
            "type": 2,
        }
    ).raw_transaction
    tx_hash = chain_env.send_raw(raw)
    payment = claim(payment, tx_hash)
    old_block = payment.block_number
    assert payment.status == "processing"
    chain_env.poll()

    node.reorg(1)  # replaces the block holding it: the transaction is gone
    assert w3.provider.make_request("eth_getTransactionReceipt", [tx_hash])["result"] is None
    report = chain_env.poll()
    payment = reload(payment)
    assert report.reorg_at == old_block and report.moved_back == 1
    assert payment.status == "pending" and payment.block_number is None
    assert payment.transaction_hash == tx_hash  # still claimed: waiting for it to come back
    assert payment.review_status == "flagged" and payment.review_reasons[0]["reason"] == "reorg"
    node.mine(CONFIRMATIONS + 1)
    chain_env.poll()
    assert reload(payment).status == "pending"  # never confirmed without the transaction

    chain_env.send_raw(raw)  # mined again, in another block
    chain_env.poll()
    payment = reload(payment)
    assert payment.status == "processing" and payment.block_number > old_block
    node.mine(CONFIRMATIONS)
    chain_env.poll()
    chain_env.poll()
    assert reload(payment).status == "confirmed"
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1


def test_reorg_that_reincludes_the_transaction_moves_it_to_the_new_block(chain_env, buyer, seller):
    node, w3 = chain_env.node, chain_env.w3
    payment = start_payment(chain_order(buyer, seller), "crypto")
    payer = node.local_account(3)
    raw = payer.sign_transaction(
        {
            "to": w3.to_checksum_address(chain_env.receiving),
            "value": 5 * 10**17,
            "gas": 21000,
            "maxFeePerGas": 100 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": w3.eth.get_transaction_count(payer.address),
            "chainId": chain_env.chain_id,
            "type": 2,
        }
    ).raw_transaction
    tx_hash = chain_env.send_raw(raw)
    node.mine(1)
    payment = claim(payment, tx_hash)
    old_hash = payment.block_hash
    node.reorg(2, [(raw, 1)])  # the same transaction, one block later
    chain_env.poll()  # sees the old block gone: back to waiting
    chain_env.poll()  # the receipt again, in its new block
    payment = reload(payment)
    assert payment.status == "processing" and payment.block_hash != old_hash
    node.mine(CONFIRMATIONS)
    chain_env.poll()
    assert reload(payment).status == "confirmed"
    assert OrderPaymentEvent.objects.filter(payment_id=payment.id, action="confirm").count() == 1


def test_webhook_through_the_endpoint_reads_the_signature_header(
    chain_env, buyer, seller, settings, client, django_capture_on_commit_callbacks
):
    """End to end through POST /api/orders/payment/webhook: the view hands the request's
    headers to the chain source, which reads X-Chain-Signature."""
    settings.CHAIN_WEBHOOK_SECRET = "whsec-test"
    payment = start_payment(chain_order(buyer, seller), "crypto")
    chain_env.node.set_automine(False)
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17, gas=21000)
    payment = claim(payment, tx_hash)
    chain_env.node.mine(1)
    body = json.dumps({"chain_id": chain_env.chain_id, "transaction_hashes": [tx_hash]}).encode()
    url = "/api/orders/payment/webhook"

    def post(signature: str | None):  # type: ignore[no-untyped-def]
        headers = {} if signature is None else {"HTTP_X_CHAIN_SIGNATURE": signature}
        return client.post(url, body, content_type="application/json", **headers)

    for bad in (None, sign(body, "other-secret")):
        response = post(bad)
        assert response.status_code == 400 and response.json()["error"]["code"]
    assert not WebhookEvent.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(sign(body, "whsec-test"))
    assert response.status_code == 200 and response.json() == {
        "received": True,
        "duplicate": False,
    }
    (event,) = WebhookEvent.objects.all()
    assert event.provider == "chain" and event.status == "processed"
    assert reload(payment).block_number is not None
    assert post(sign(body, "whsec-test")).json()["duplicate"] is True


def test_webhook_hint_checks_the_named_transaction(
    chain_env, buyer, seller, settings, django_capture_on_commit_callbacks
):
    settings.CHAIN_WEBHOOK_SECRET = "whsec-test"
    payment = start_payment(chain_order(buyer, seller), "crypto")
    chain_env.node.set_automine(False)
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17, gas=21000)
    payment = claim(payment, tx_hash)
    assert payment.status == "processing" and payment.block_number is None  # in the pool
    chain_env.node.mine(1)
    body = json.dumps({"chain_id": chain_env.chain_id, "transaction_hashes": [tx_hash]}).encode()
    with pytest.raises(WebhookSignatureError):
        webhook_receive(body, {"X-Chain-Signature": sign(body, "other-secret")})
    with pytest.raises(WebhookSignatureError):
        old = int(timezone.now().timestamp()) - 3600
        webhook_receive(body, {"X-Chain-Signature": sign(body, "whsec-test", old)})
    with django_capture_on_commit_callbacks(execute=True):
        event, created = webhook_receive(body, {"X-Chain-Signature": sign(body, "whsec-test")})
    assert created
    event.refresh_from_db()
    assert event.status == "processed"
    payment = reload(payment)
    assert payment.block_number is not None and payment.gas_used == 21000


def test_webhook_naming_an_unclaimed_hash_changes_nothing(
    chain_env, buyer, seller, settings, django_capture_on_commit_callbacks
):
    settings.CHAIN_WEBHOOK_SECRET = "whsec-test"
    payment = start_payment(chain_order(buyer, seller), "crypto")
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17)
    body = json.dumps({"transaction_hashes": [tx_hash]}).encode()
    with django_capture_on_commit_callbacks(execute=True):
        event, _ = webhook_receive(body, {"X-Chain-Signature": sign(body, "whsec-test")})
    event.refresh_from_db()
    assert event.status == "processed"
    assert reload(payment).transaction_hash is None and reload(payment).status == "pending"


def test_unpaid_payment_expires(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller), "crypto")
    PaymentTransaction.objects.filter(pk=payment.id).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    report = chain_env.poll()
    assert report.expired == 1 and reload(payment).status == "expired"
    # by the one expiry rule the stale-payment sweeper also runs (provider asked first)
    expiry = OrderPaymentEvent.objects.get(payment_id=payment.id, to_state="expired")
    assert expiry.details["provider_status"] == "cancelled" and "expires_at" in expiry.details
    # paid late: accepted, flagged
    tx_hash = chain_env.send(chain_env.payer, chain_env.receiving, 5 * 10**17)
    chain_env.node.mine(CONFIRMATIONS)
    payment = claim(payment, tx_hash)
    assert payment.status == "confirmed"
    assert "late_payment" in [r["reason"] for r in payment.review_reasons]


def test_claimed_hash_never_seen_expires_and_is_credited_if_mined_late(
    chain_env, buyer, seller, settings
):
    settings.CHAINS = [{**settings.CHAINS[0], "claim_timeout_seconds": 0}]
    payment = start_payment(chain_order(buyer, seller), "crypto")
    order = payment.order
    w3 = chain_env.w3
    account = chain_env.node.local_account(3)  # the payer's key: the same raw bytes, twice
    signed = account.sign_transaction(
        {
            "to": w3.to_checksum_address(chain_env.receiving),
            "value": 5 * 10**17,
            "gas": 21000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": chain_env.chain_id,
        }
    )
    chain_env.node.set_automine(False)
    tx_hash = chain_env.send_raw(signed.raw_transaction)
    claim(payment, tx_hash)
    chain_env.node.drop_transaction(tx_hash)
    chain_env.poll()
    payment = reload(payment)
    assert payment.status == "expired" and payment.transaction_hash == tx_hash
    assert Order.objects.get(pk=order.id).status != "paid"
    chain_env.poll()  # still looked for, nothing changes
    assert reload(payment).status == "expired"

    # the wallet broadcasts it again and it is mined, late: the money is credited, flagged
    chain_env.send_raw(signed.raw_transaction)
    chain_env.node.mine(1)
    chain_env.poll()
    chain_env.node.mine(CONFIRMATIONS)
    chain_env.poll()
    payment = reload(payment)
    assert payment.status == "confirmed" and payment.review_status == "flagged"
    assert "late_payment" in {r["reason"] for r in payment.review_reasons}
    assert Order.objects.get(pk=order.id).status == "paid"


def test_rpc_errors_back_off_and_do_not_stop_other_chains(chain_env, settings):
    from tests.peers.anvil import free_port

    dead = {**settings.CHAINS[0], "chain_id": 999, "rpc_url": f"http://127.0.0.1:{free_port()}"}
    settings.CHAINS = [dead, *settings.CHAINS]
    reports = {r.chain_id: r for r in chain_poll_all()}
    assert reports[999].error and not reports[chain_env.chain_id].error
    assert reports[chain_env.chain_id].head is not None
    assert chain_poll(999).skipped == "backoff"


def test_the_cursor_stores_the_head_it_saw(chain_env):
    """The chain-lag gauge and alert compare the cursor with this head."""
    from payments.models import ChainCursor

    chain_env.node.mine(5)
    report = chain_env.poll()
    cursor = ChainCursor.objects.get(chain_id=chain_env.chain_id)
    assert cursor.head_number == report.head == chain_env.w3.eth.block_number
    assert cursor.block_number <= cursor.head_number


def test_a_currency_the_chain_does_not_accept_is_refused_before_writing(
    chain_env, buyer, seller, mailoutbox
):
    """400 before any row: no order left as payment_failed, no email, no attempt counted."""
    from payments.services.checkout import checkout_order_create

    for currency, details in (("DAI", {}), ("USDC", {"chain_id": 999})):
        with pytest.raises(ValidationFailed) as err:
            checkout_order_create(
                buyer=buyer,
                seller_id=seller.pk,
                amount="10",
                currency=currency,
                actor=Actor.for_user(buyer),
                method="crypto",
                details={"payer_address": PAYER, **details},
            )
        assert err.value.code in ("unsupported_currency", "unsupported_chain")
    assert Order.objects.count() == 0 and PaymentTransaction.objects.count() == 0
    assert mailoutbox == []
