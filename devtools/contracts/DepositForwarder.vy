# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
# @license MIT
"""
@title DepositForwarder
@notice The code behind every per-payment deposit address. A DepositFactory
        deploys one instance of this contract (the implementation) and puts an
        EIP-1167 minimal proxy to it at each deposit address when it sweeps
        that address; `flush` then sends everything the address holds - all of
        its native coin and all of each listed token - to the receiver.
@dev    FACTORY is whoever deployed the implementation (the DepositFactory
        deploys it in its own constructor) and RECEIVER is set once by the
        factory. Both are immutables: they live in the implementation's code,
        so a proxy running that code with DELEGATECALL reads the same values
        and needs no storage of its own. Only the factory may flush; it holds
        the reentrancy lock for the whole sweep. Sending native coin to a
        proxy runs `__default__`, which accepts it.
"""

FACTORY: public(immutable(address))
RECEIVER: public(immutable(address))

MAX_TOKENS: constant(uint256) = 8


@deploy
def __init__(_receiver: address):
    assert _receiver != empty(address), "DepositForwarder: receiver is zero"
    FACTORY = msg.sender
    RECEIVER = _receiver


@payable
@external
def __default__():
    """
    @notice Accept native coin, also from a plain transfer.
    """
    pass


@external
def flush(tokens: DynArray[address, MAX_TOKENS]):
    """
    @notice Send this address's whole native balance and its whole balance of
            each of `tokens` to RECEIVER. Factory only.
    @dev Reverts if a payout fails: native coin the receiver refuses, or a
         token transfer that reverts or returns false (a token that returns
         nothing is accepted). Nothing is sent for a zero balance.
    """
    assert msg.sender == FACTORY, "DepositForwarder: not factory"

    native: uint256 = self.balance
    if native > 0:
        # all gas is forwarded (the receiver may be a contract wallet);
        # the factory's reentrancy lock covers the whole sweep.
        raw_call(RECEIVER, b"", value=native)

    for token: address in tokens:
        amount: uint256 = self._balance_of(token)
        if amount > 0:
            self._safe_transfer(token, RECEIVER, amount)


@view
@internal
def _balance_of(token: address) -> uint256:
    response: Bytes[32] = raw_call(
        token,
        abi_encode(self, method_id=method_id("balanceOf(address)")),
        max_outsize=32,
        is_static_call=True,
    )
    assert len(response) == 32, "DepositForwarder: bad balanceOf"
    return abi_decode(response, uint256)


@internal
def _safe_transfer(token: address, to: address, amount: uint256):
    # tokens that return nothing are accepted; a returned value must be true
    response: Bytes[32] = raw_call(
        token,
        abi_encode(to, amount, method_id=method_id("transfer(address,uint256)")),
        max_outsize=32,
    )
    if len(response) != 0:
        assert abi_decode(response, bool), "DepositForwarder: transfer failed"
