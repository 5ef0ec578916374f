"""Development helper: pay a crypto or escrow payment by sending its transaction_requests in
order from a wallet the node unlocks (anvil's accounts), then print the hashes. A payment
through the Payments contract needs no claim (the monitor finds its event); an escrow deposit
or an old-style transfer is claimed with the API (or pass --claim to claim it here)."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from orders.audit import Actor
from payments.models import PaymentTransaction
from payments.providers.chain import client as rpc
from payments.providers.chain.registry import get_chain
from payments.services.payments import payment_claim_transaction


class Command(BaseCommand):
    help = "Send a chain payment's transaction requests from an unlocked dev wallet."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("payment_id")
        parser.add_argument(
            "--from",
            dest="sender",
            help="default: the payment's payer_address (crypto), else the node's account 2",
        )
        parser.add_argument("--claim", action="store_true", help="claim the last hash here")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        payment = PaymentTransaction.objects.filter(pk=options["payment_id"]).first()
        if payment is None or payment.method not in ("crypto", "escrow"):
            raise CommandError("No crypto or escrow payment with that id.")
        requests_ = (payment.provider_data.get("instructions") or {}).get("transaction_requests")
        if not requests_:
            raise CommandError("The payment has no transaction requests (was it started?).")
        client = rpc.client_for(get_chain(payment.chain_id).rpc_url)
        instructions = payment.provider_data.get("instructions") or {}
        # from the wallet the payment names, if it names one; else the node's account 2
        sender = (
            options["sender"]
            or requests_[0].get("from")
            or instructions.get("payer_address")
            or client.call("eth_accounts")[2]
        )
        hashes = []
        for req in requests_:
            tx = {"from": sender, "to": req["to"], "value": req["value_hex"], "data": req["data"]}
            tx_hash = str(client.call("eth_sendTransaction", [tx]))
            for _ in range(200):
                receipt = client.call("eth_getTransactionReceipt", [tx_hash])
                if receipt:
                    break
                time.sleep(0.1)
            else:
                raise CommandError(f"{tx_hash} was not mined")
            if rpc.to_int(receipt["status"]) != 1:
                raise CommandError(f"{tx_hash} reverted")
            hashes.append(tx_hash)
        out = {"payment_id": str(payment.id), "sender": sender, "transaction_hashes": hashes}
        if options["claim"]:
            claimed = payment_claim_transaction(
                payment_id=payment.id,
                transaction_hash=hashes[-1],
                chain_id=payment.chain_id,
                actor=Actor.system("chain_pay"),
            )
            out["status"] = claimed.status
        self.stdout.write(json.dumps(out, indent=2))
