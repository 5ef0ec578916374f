"""One bad payment or event never stops a chain's monitor: each is applied in its own
savepoint; a failing one is flagged ``monitor_error`` for staff and the pass (and the cursor)
carries on. Malformed logs decode to nothing instead of raising."""

from __future__ import annotations

import pytest

from common.errors import Conflict, ValidationFailed
from orders.audit import Actor
from payments.chain import apply as chain_apply
from payments.models import ChainCursor
from payments.providers.chain import client as rpc
from payments.services.payments import payment_claim_transaction
from tests.payments.chain.conftest import CONFIRMATIONS, PAYER, chain_order, reload, start_payment

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_a_failing_payment_is_flagged_and_the_pass_carries_on(
    chain_env, buyer, seller, monkeypatch
):
    started = [start_payment(chain_order(buyer, seller, "ETH", "0.1"), "crypto") for _ in range(3)]
    payments = []
    for p in started:
        (h,) = chain_env.send_requests(p)
        payments.append(
            payment_claim_transaction(
                payment_id=p.id, transaction_hash=h, chain_id=None, actor=Actor.for_user(buyer)
            )
        )
    chain_env.poll()
    cursor = ChainCursor.objects.get(chain_id=chain_env.chain_id).block_number
    chain_env.node.mine(CONFIRMATIONS + 3)  # all three deep enough

    real = chain_apply.payment_apply_result
    bad = payments[1].id

    def refuses_one(**kwargs):  # type: ignore[no-untyped-def]
        if kwargs["payment_id"] == bad:
            raise Conflict("something about this one is wrong", code="broken")
        return real(**kwargs)

    real_many = chain_apply.payments_move_many

    def refuses_chunk(moves, **kwargs):  # type: ignore[no-untyped-def]
        if any(m.payment_id == bad for m in moves):  # the set-based path fails on its chunk
            raise Conflict("something about this one is wrong", code="broken")
        return real_many(moves, **kwargs)

    monkeypatch.setattr(chain_apply, "payment_apply_result", refuses_one)
    monkeypatch.setattr(chain_apply, "payments_move_many", refuses_chunk)
    chain_env.poll()  # no exception: the pass finishes (the others one at a time)
    assert [reload(p).status for p in payments] == ["confirmed", "processing", "confirmed"]
    flagged = reload(payments[1])
    assert flagged.review_status == "flagged"
    [reason] = [r for r in flagged.review_reasons if r["reason"] == "monitor_error"]
    assert "something about this one is wrong" in reason["details"]["error"]
    assert ChainCursor.objects.get(chain_id=chain_env.chain_id).block_number > cursor

    monkeypatch.setattr(chain_apply, "payment_apply_result", real)
    monkeypatch.setattr(chain_apply, "payments_move_many", real_many)
    chain_env.poll()  # fixed: the next pass confirms it
    assert reload(payments[1]).status == "confirmed"


def short_transfer_log_init_code(sender: str, recipient: str) -> str:
    """Contract-creation code emitting a 3-topic ``Transfer`` log with 1 byte of data."""
    code = "7f" + rpc.address_topic(recipient)[2:]
    code += "7f" + rpc.address_topic(sender)[2:]
    code += "7f" + rpc.TRANSFER_TOPIC[2:]
    code += "6001" + "6000" + "a3" + "00"  # size 1, offset 0, LOG3, STOP
    return "0x" + code


def test_a_malformed_transfer_log_is_not_a_server_error(chain_env, buyer, seller):
    payment = start_payment(chain_order(buyer, seller, "USDC", "10"), "crypto")
    tx = {
        "from": chain_env.w3.to_checksum_address(PAYER),
        "data": short_transfer_log_init_code(PAYER, chain_env.receiving),
    }
    tx_hash = "0x" + bytes(chain_env.w3.eth.send_transaction(tx)).hex()
    receipt = chain_env.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    [log] = receipt["logs"]
    assert len(log["topics"]) == 3 and len(log["data"]) == 1
    raw = {"topics": ["0x" + bytes(t).hex() for t in log["topics"]], "data": "0x01"}
    assert rpc.decode_log(raw) is None

    with pytest.raises(ValidationFailed) as err:  # a 4xx, not a DecodingError
        payment_claim_transaction(
            payment_id=payment.id,
            transaction_hash=tx_hash,
            chain_id=None,
            actor=Actor.for_user(buyer),
        )
    assert err.value.code == "wrong_recipient"
    assert chain_env.poll().error == ""
