"""The local peers of `make run` (development only; nothing in the apps imports this module).

One place knows the ports, the local environment and anvil's well-known development accounts:

    python -m devtools.peers env          write VAR_DIR/local.env (what web, worker, beat and
                                           every `manage.py` command read through local settings)
    python -m devtools.peers localstripe  localstripe on 127.0.0.1:STRIPE_PORT, in memory
                                           (idles when a real Stripe key is configured)
    python -m devtools.peers anvil        anvil on 127.0.0.1:ANVIL_PORT (chain id 31337)
    python -m devtools.peers setup        wait for the peers, deploy the contracts and fund the
                                           demo wallets, register our webhook with localstripe,
                                           print where everything is, then wait

Order: `env` runs before every other process (make run), so they all read one file; `setup`
runs beside them and waits for anvil and localstripe itself. The chain registry reads the
contract addresses from CHAIN_DEV_DEPLOYMENT_FILE when it is asked, so web and worker need no
restart after the deployment.

The keys below are anvil's public test keys (mnemonic "test test ... junk"): every developer
and tool knows them. Never use them on a real chain.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337
DEFAULT_PORTS = {"WEB_PORT": 8000, "STRIPE_PORT": 8420, "ANVIL_PORT": 8545}
LOCALSTRIPE_SECRET_KEY = "sk_test_orderpay_localstripe"
LOCALSTRIPE_WEBHOOK_SECRET = "whsec_orderpay_localstripe"
#: blocks (counting the transaction's) before a local chain payment is confirmed; anvil mines
#: one block per second besides one per transaction, so this takes about three seconds.
LOCAL_CONFIRMATIONS = 3
WEBHOOK_PATH = "/api/orders/payment/webhook"

#: anvil account index -> its role in the demo
WALLET_ROLES = {
    1: "operator",  # ESCROW_OPERATOR_KEY: deploys the contracts, releases, refunds, signs
    2: "buyer",  # chain_pay's default sender; funded with test USDC
    3: "buyer2",  # a second funded payer
    4: "seller",  # pass as seller_address for escrow payments
    5: "arbiter",  # ESCROW_ARBITER_KEY: resolves EscrowV2 disputes
    9: "receiving",  # CRYPTO_RECEIVING_ADDRESS: where direct payments go
}
FUNDED_ROLES = ("buyer", "buyer2")


@dataclass(frozen=True)
class Wallet:
    role: str
    index: int
    address: str
    key: str


def var_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("ORDERPAY_VAR_DIR") or BASE_DIR / "var")


def local_env_path(environ: Mapping[str, str] = os.environ) -> Path:
    return var_dir(environ) / "local.env"


def demo_env_path(environ: Mapping[str, str] = os.environ) -> Path:
    return var_dir(environ) / "demo.env"


def wallets() -> dict[str, Wallet]:
    """anvil's well-known accounts, derived from its public mnemonic."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    out = {}
    for index, role in WALLET_ROLES.items():
        account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        key = "0x" + account.key.hex().removeprefix("0x")
        out[role] = Wallet(role, index, account.address, key)
    return out


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def ports(environ: Mapping[str, str]) -> dict[str, int]:
    return {name: int(environ.get(name) or default) for name, default in DEFAULT_PORTS.items()}


def local_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings that point web, worker and beat at the local peers. ``environ`` is the
    developer's own configuration (process environment over ``.env``): what it sets wins,
    and a real Stripe key or chain RPC URL there turns the matching local peer off."""
    p = ports(environ)
    values = {name: str(port) for name, port in p.items()}
    values["PLATFORM_URL"] = f"http://127.0.0.1:{p['WEB_PORT']}"
    if not environ.get("STRIPE_SECRET_KEY"):
        values["STRIPE_API_BASE"] = f"http://127.0.0.1:{p['STRIPE_PORT']}"
        values["STRIPE_SECRET_KEY"] = LOCALSTRIPE_SECRET_KEY
        values["STRIPE_WEBHOOK_SECRET"] = LOCALSTRIPE_WEBHOOK_SECRET
    if not environ.get("CHAIN_RPC_URL"):
        w = wallets()
        values["CHAIN_ID"] = str(ANVIL_CHAIN_ID)
        values["CHAIN_RPC_URL"] = f"http://127.0.0.1:{p['ANVIL_PORT']}"
        values["REQUIRED_CONFIRMATIONS"] = str(LOCAL_CONFIRMATIONS)
        values["CRYPTO_RECEIVING_ADDRESS"] = w["receiving"].address
        values["ESCROW_OPERATOR_KEY"] = w["operator"].key
        values["ESCROW_ARBITER_KEY"] = w["arbiter"].key
        values["CHAIN_DEV_DEPLOYMENT_FILE"] = str(var_dir(environ) / "chain-31337.json")
    return {k: v for k, v in values.items() if not environ.get(k) or k in DEFAULT_PORTS}


def developer_environ() -> dict[str, str]:
    """The process environment over the repository's ``.env`` (which honcho also reads)."""
    return {**read_env_file(BASE_DIR / ".env"), **os.environ}


def uses_localstripe(values: Mapping[str, str]) -> bool:
    return values.get("STRIPE_SECRET_KEY") == LOCALSTRIPE_SECRET_KEY and bool(
        values.get("STRIPE_API_BASE")
    )


# --- commands -------------------------------------------------------------------------------
def cmd_env(_args: argparse.Namespace) -> None:
    environ = developer_environ()
    values = local_env(environ)
    path = local_env_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `python -m devtools.peers env` (make run): the local peers' settings.",
        "# anvil's well-known development keys only; the process environment and .env win.",
        *(f"{key}={value}" for key, value in values.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    demo_env_path(environ).unlink(missing_ok=True)  # written again once setup is done
    merged = {**values, **environ}
    stripe = merged.get("STRIPE_API_BASE") if uses_localstripe(merged) else "Stripe (your key)"
    print(f"Local settings written to {path}")
    print(f"  card payments: {stripe}")
    print(f"  chain:         {merged.get('CHAIN_RPC_URL')} (chain id {merged.get('CHAIN_ID')})")


def idle(message: str) -> None:
    print(message, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def cmd_localstripe(args: argparse.Namespace) -> None:
    values = {**read_env_file(local_env_path()), **developer_environ()}
    if args.port is None and not uses_localstripe(values):
        idle("A Stripe key is configured: localstripe is not started.")
    port = args.port if args.port is not None else ports(values)["STRIPE_PORT"]
    serve_localstripe(port)


def serve_localstripe(port: int) -> None:
    """localstripe's own application on 127.0.0.1 only (its command binds every interface)
    and in memory (its command pickles the store to the shared /tmp/localstripe.pickle)."""
    from aiohttp import web
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    print(f"localstripe on http://127.0.0.1:{port}", flush=True)
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


def anvil_binary() -> str:
    return os.environ.get("ANVIL_BIN") or str(BASE_DIR / "node_modules" / ".bin" / "anvil")


def cmd_anvil(_args: argparse.Namespace) -> None:
    values = {**read_env_file(local_env_path()), **developer_environ()}
    port = ports(values)["ANVIL_PORT"]
    if values.get("CHAIN_RPC_URL") != f"http://127.0.0.1:{port}":
        idle(f"CHAIN_RPC_URL is {values.get('CHAIN_RPC_URL')}: anvil is not started.")
    binary = anvil_binary()
    argv = [binary, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--chain-id", str(ANVIL_CHAIN_ID), "--block-time", "1", "--mixed-mining", "--silent"]
    print(f"anvil on http://127.0.0.1:{port} (chain id {ANVIL_CHAIN_ID})", flush=True)
    os.execv(binary, argv)  # noqa: S606 (our own argument list)


def wait_http(url: str, body: bytes | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(  # noqa: S310 (loopback, our own peers)
                url, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                response.read()
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout:.0f} s: {exc}") from None
            time.sleep(0.2)


def cmd_setup(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from payments.models import ChainCursor
    from payments.providers.chain import client as rpc
    from payments.providers.chain.registry import default_chain

    w = wallets()
    chain = default_chain()
    rpc_body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode()
    wait_http(chain.rpc_url, rpc_body, args.wait)
    deployment = Path(settings.CHAIN_DEV_DEPLOYMENT_FILE)
    if chain.chain_id == ANVIL_CHAIN_ID:
        known = json.loads(deployment.read_text()) if deployment.is_file() else {}
        client = rpc.client_for(chain.rpc_url)
        codes = [
            client.call("eth_getCode", [known[name], "latest"]) if known.get(name) else "0x"
            for name in ("escrow_contract", "payment_contract", "deposit_factory")
        ]
        if any(code in ("0x", "", None) for code in codes):
            # A fresh chain: deploy, and forget the cursor of the chain an earlier run had.
            ChainCursor.objects.filter(chain_id=chain.chain_id).delete()
            funded = [w[role].address for role in FUNDED_ROLES]
            call_command("deploy_contracts", wait=args.wait, fund=funded)
        else:
            print(f"Contracts already on the chain: {deployment}", flush=True)
    if settings.STRIPE_API_BASE and settings.STRIPE_SECRET_KEY == LOCALSTRIPE_SECRET_KEY:
        wait_http(settings.STRIPE_API_BASE + "/v1/payment_intents", None, args.wait)
        web_port = ports(os.environ)["WEB_PORT"]
        call_command("stripe_local_setup", webhook_url=f"http://127.0.0.1:{web_port}{WEBHOOK_PATH}")
    path = write_demo_env()
    print(summary(path), flush=True)
    if args.once:
        return
    idle("Setup done; Ctrl-C stops everything.")


def write_demo_env() -> Path:
    """Shell variables for the walkthrough (``source var/demo.env``): the API's address, the
    demo users' tokens and ids, the RPC URL and the demo wallets. Written last: when it
    exists, the system is set up."""
    from rest_framework.authtoken.models import Token

    from payments.providers.chain.registry import default_chain

    values = {
        # so that `manage.py` commands run by hand after `source` reach this system's files
        "ORDERPAY_VAR_DIR": str(var_dir()),
        "API": f"http://127.0.0.1:{ports(os.environ)['WEB_PORT']}",
        "RPC": default_chain().rpc_url,
        "STRIPE": os.environ.get("STRIPE_API_BASE", ""),
    }
    for token in Token.objects.select_related("user").filter(
        user__username__in=["buyer", "seller", "support", "admin"]
    ):
        values[token.user.username.upper()] = token.key
        values[f"{token.user.username.upper()}_ID"] = str(token.user.pk)
    for wallet in wallets().values():
        values[f"{wallet.role.upper()}_WALLET"] = wallet.address
    path = demo_env_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"export {key}={value}\n" for key, value in values.items()))
    tmp.replace(path)
    return path


def summary(demo_env: Path) -> str:
    from django.conf import settings

    from payments.providers.chain.registry import default_chain

    web = f"http://127.0.0.1:{ports(os.environ)['WEB_PORT']}"
    chain = default_chain()
    lines = [
        "",
        "================ orderpay is running ================",
        f"  web            {web}/",
        f"  admin          {web}/admin/  (users and password: see setup_demo above)",
        f"  API docs       {web}/api/docs/   schema: {web}/api/schema/",
        f"  analytics      {web}/admin/payments/paymenttransaction/analytics/",
        f"  health         {web}/healthz  {web}/readyz  {web}/metrics",
        f"  card payments  {settings.STRIPE_API_BASE or 'Stripe'}",
        f"  chain          {chain.rpc_url} (chain id {chain.chain_id}, "
        f"{chain.required_confirmations} confirmations)",
        f"  escrow         {chain.escrow_contract or '-'}",
        f"  payments       {chain.payment_contract or '-'}",
        f"  deposits       {chain.deposit_factory or '-'} (factory)",
    ]
    for asset in chain.assets:
        if asset.address:
            lines.append(f"  token          {asset.symbol} {asset.address} ({asset.decimals} dp)")
    lines.append("  demo wallets (anvil's public test accounts; never use them elsewhere):")
    for wallet in wallets().values():
        lines.append(f"    {wallet.role:<10} {wallet.address}  key {wallet.key}")
    lines.append(f"  shell variables for the walkthrough: source {demo_env}")
    lines.append("=====================================================")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.peers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env").set_defaults(func=cmd_env)
    stripe = sub.add_parser("localstripe")
    stripe.add_argument("--port", type=int, default=None, help="default: STRIPE_PORT")
    stripe.set_defaults(func=cmd_localstripe)
    sub.add_parser("anvil").set_defaults(func=cmd_anvil)
    setup = sub.add_parser("setup")
    setup.add_argument("--wait", type=float, default=60, help="seconds to wait for the peers")
    setup.add_argument("--once", action="store_true", help="exit when done (do not idle)")
    setup.set_defaults(func=cmd_setup)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
