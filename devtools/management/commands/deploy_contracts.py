"""Deploy the EscrowV2 and Payments contracts (and, on a development chain, the 6-decimal
TestToken); print the addresses as JSON. The operator key's address signs payment intents.
On chain 31337 the addresses are also written to CHAIN_DEV_DEPLOYMENT_FILE,
where the chain registry finds them, and ``--fund`` gives demo wallets ETH and test tokens."""

import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools.contracts import deploy
from payments.providers.chain import client as rpc
from payments.providers.chain.registry import DEV_DEPLOYMENT_CHAIN_ID, default_chain
from payments.providers.escrow.artifacts import load_artifact

FUND_WEI = 100 * 10**18
FUND_TOKEN_UNITS = 100_000 * 10**6


class Command(BaseCommand):
    help = "Deploy EscrowV2, Payments, DepositFactory (and TestToken on a dev chain) as JSON."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--rpc-url", help="default: the default chain's CHAIN_RPC_URL")
        parser.add_argument("--operator", help="operator address (default: the operator key's)")
        parser.add_argument("--owner", help="EscrowV2's owner (dev chain: anvil account 0)")
        parser.add_argument("--arbiter", help="EscrowV2's arbiter (dev chain: anvil account 5)")
        parser.add_argument(
            "--backup-arbiter", help="EscrowV2's backup arbiter (dev chain: anvil account 6)"
        )
        parser.add_argument(
            "--receiver",
            help="where deposit addresses sweep to (default: CRYPTO_RECEIVING_ADDRESS)",
        )
        parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the node")
        parser.add_argument("--fund", nargs="*", default=[], help="dev chain: wallets to fund")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        chain = default_chain() if not options["rpc_url"] else None
        url = options["rpc_url"] or chain.rpc_url
        w3 = rpc.web3_for(url)
        deadline = time.monotonic() + options["wait"]
        while True:
            try:
                chain_id = int(w3.eth.chain_id)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise CommandError(f"The node at {url} does not answer: {exc}") from None
                time.sleep(0.5)
        dev = chain_id == DEV_DEPLOYMENT_CHAIN_ID
        key = chain.operator_key if chain else ""
        if key:
            deployer = rpc.local_account(key)
            operator = options["operator"] or deployer.address
        elif dev:
            deployer = w3.eth.accounts[0]  # anvil's unlocked account 0
            operator = options["operator"] or w3.eth.accounts[1]  # not the owner (0)
        else:
            raise CommandError("Set ESCROW_OPERATOR_KEY to deploy outside a development chain.")
        receiver = options["receiver"] or (chain.receiving_address if chain else "")
        accounts = w3.eth.accounts if dev else []
        # EscrowV2 wants four different holders: an owner who is not the operator, and an
        # arbiter and a backup arbiter of their own (anvil's accounts 0, 5 and 6 on a dev chain)
        owner = options["owner"] or (accounts[0] if dev else "")
        arbiter = options["arbiter"] or (accounts[5] if dev else "")
        backup = options["backup_arbiter"] or (accounts[6] if dev else "")
        if not (owner and arbiter and backup):
            raise CommandError("Pass --owner, --arbiter and --backup-arbiter outside a dev chain.")
        out = {
            "chain_id": chain_id,
            "escrow_contract": deploy.deploy_escrow_v2(
                w3,
                deployer,
                owner=owner,
                operator=operator,
                arbiter=arbiter,
                backup_arbiter=backup,
            ),
            "escrow_version": 2,
            # owner (may rotate the signer) and signer of payment intents: the operator
            "payment_contract": deploy.deploy_payments(w3, deployer, operator, operator),
            "owner": owner,
            "operator": operator,
            "arbiter": arbiter,
            "backup_arbiter": backup,
            "receiver": receiver,
            "tokens": [],
        }
        if receiver:
            # deposit addresses sweep to the receiving address: no receiver, no factory
            factory, forwarder = deploy.deploy_deposit_factory(
                w3, deployer, operator, operator, receiver
            )
            out.update(deposit_factory=factory, deposit_implementation=forwarder)
        if dev:
            token = deploy.deploy_test_token(w3, deployer)
            out["tokens"] = [{"symbol": "USDC", "address": token, "decimals": 6}]
            escrow = w3.eth.contract(
                address=out["escrow_contract"], abi=load_artifact("EscrowV2").abi_list()
            )  # EscrowV2 takes only allow-listed tokens; the owner (account 0) lists it
            deploy.transact(w3, owner, escrow.functions.set_token_allowed(token, True))
            contract = deploy.token_contract(w3, token)
            for wallet in options["fund"]:
                wallet = w3.to_checksum_address(wallet)
                deploy.send_transaction(
                    w3,
                    deployer,
                    {"to": wallet, "value": FUND_WEI, "gas": 21000, "gasPrice": w3.eth.gas_price},
                )
                deploy.transact(w3, deployer, contract.functions.mint(wallet, FUND_TOKEN_UNITS))
            out["funded"] = options["fund"]
            path = Path(settings.CHAIN_DEV_DEPLOYMENT_FILE)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=2))
        self.stdout.write(json.dumps(out, indent=2))
        if not dev and chain and any(a.address for a in chain.assets):
            tokens = ", ".join(str(a.address) for a in chain.assets if a.address)
            self.stdout.write(
                f"EscrowV2 takes only allow-listed tokens: its owner ({owner}) must call "
                f"set_token_allowed(token, true) for each accepted token ({tokens})."
            )
