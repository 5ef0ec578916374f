"""The local environment `make run` writes (config/devpeers.py): which peers it points at."""

from devtools import peers as devpeers


def test_defaults_point_every_process_at_localstripe_and_anvil(tmp_path):
    values = devpeers.local_env({"ORDERPAY_VAR_DIR": str(tmp_path)})
    assert values["WEB_PORT"] == "8000" and values["PLATFORM_URL"] == "http://127.0.0.1:8000"
    assert values["STRIPE_API_BASE"] == "http://127.0.0.1:8420"
    assert values["STRIPE_SECRET_KEY"].startswith("sk_test_")
    assert values["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    assert values["CHAIN_RPC_URL"] == "http://127.0.0.1:8545" and values["CHAIN_ID"] == "31337"
    # anvil's well-known accounts: 1 operates the escrow, 9 receives direct payments
    assert values["ESCROW_OPERATOR_KEY"] == (
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    )
    assert values["CRYPTO_RECEIVING_ADDRESS"] == "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
    assert values["CHAIN_DEV_DEPLOYMENT_FILE"] == str(tmp_path / "chain-31337.json")
    assert devpeers.uses_localstripe(values)


def test_ports_come_from_the_environment():
    values = devpeers.local_env({"WEB_PORT": "9001", "STRIPE_PORT": "9002", "ANVIL_PORT": "9003"})
    assert values["PLATFORM_URL"] == "http://127.0.0.1:9001"
    assert values["STRIPE_API_BASE"] == "http://127.0.0.1:9002"
    assert values["CHAIN_RPC_URL"] == "http://127.0.0.1:9003"


def test_a_real_stripe_key_turns_localstripe_off():
    values = devpeers.local_env({"STRIPE_SECRET_KEY": "sk_test_real"})
    assert not {"STRIPE_API_BASE", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"} & set(values)
    assert not devpeers.uses_localstripe({**values, "STRIPE_SECRET_KEY": "sk_test_real"})


def test_a_configured_chain_is_left_alone_and_own_values_win():
    values = devpeers.local_env(
        {"CHAIN_RPC_URL": "https://rpc.example", "STRIPE_WEBHOOK_SECRET": "whsec_mine"}
    )
    assert not {"CHAIN_RPC_URL", "ESCROW_OPERATOR_KEY", "CRYPTO_RECEIVING_ADDRESS"} & set(values)
    assert "STRIPE_WEBHOOK_SECRET" not in values  # the developer's own value is kept


def test_env_file_round_trip(tmp_path):
    path = tmp_path / "local.env"
    path.write_text("# comment\nexport A=1\nB='two'\n\nC=x=y\n")
    assert devpeers.read_env_file(path) == {"A": "1", "B": "two", "C": "x=y"}


def test_demo_wallets_are_anvils_public_accounts():
    wallets = devpeers.wallets()
    assert wallets["buyer"].address == "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert wallets["operator"].address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert set(devpeers.FUNDED_ROLES) <= set(wallets)
