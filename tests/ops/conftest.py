from tests.peers.anvil import anvil  # noqa: F401  (the session fixture, for integration tests)
