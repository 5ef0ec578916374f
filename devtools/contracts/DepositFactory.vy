# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
# @license MIT
"""
@title DepositFactory
@notice Per-payment deposit addresses for senders that can only make plain
        transfers. Each payment has a bytes32 salt; `deposit_address(salt)` is
        the CREATE2 address of an EIP-1167 minimal proxy to this factory's
        DepositForwarder, known before anything is deployed there. The buyer
        sends native coin or an ERC-20 to it; later the operator calls
        `sweep(salt, tokens)`, which deploys the proxy there (the first time)
        and has it send everything it holds - all native coin and all of each
        listed token - to the receiver.
@dev    The factory deploys its own DepositForwarder (the implementation) in
        its constructor with `raw_create`, from the forwarder's creation code
        passed in by the deployer: the forwarder's FACTORY is then this
        factory and its RECEIVER is `_receiver`, both checked here. The
        receiver is fixed for the factory's life (it is part of the
        implementation's code, and so of every deposit address); a new
        receiver means a new factory and new addresses. The owner may rotate
        the operator. `sweep` is under a global reentrancy lock.
"""

interface DepositForwarder:
    def flush(tokens: DynArray[address, MAX_TOKENS]): nonpayable
    def FACTORY() -> address: view
    def RECEIVER() -> address: view


NATIVE: constant(address) = empty(address)
MAX_TOKENS: constant(uint256) = 8
# the creation code of the forwarder may be up to the EIP-3860 initcode limit
MAX_FORWARDER_CODE: constant(uint256) = 49152

# The creation code `create_minimal_proxy_to` (Vyper 0.4.3) deploys, around the
# 20-byte implementation address: a 9-byte loader that returns the 45-byte
# EIP-1167 runtime `363d3d373d3d3d363d73 <impl> 5af43d82803e903d91602b57fd5bf3`.
PROXY_PREFIX: constant(bytes19) = 0x602D3D8160093D39F3363D3D373D3D3D363D73
PROXY_SUFFIX: constant(bytes15) = 0x5AF43D82803E903D91602B57FD5BF3


event Swept:
    salt: indexed(bytes32)
    forwarder: indexed(address)
    token: indexed(address)
    amount: uint256


event ForwarderDeployed:
    salt: indexed(bytes32)
    forwarder: indexed(address)


event OperatorChanged:
    old_operator: indexed(address)
    new_operator: indexed(address)


owner: public(immutable(address))
receiver: public(immutable(address))
implementation: public(immutable(address))
# keccak256 of the proxy creation code, the last part of every CREATE2 address
init_code_hash: public(immutable(bytes32))

operator: public(address)


@deploy
def __init__(
    _owner: address,
    _operator: address,
    _receiver: address,
    _forwarder_code: Bytes[MAX_FORWARDER_CODE],
):
    """
    @param _owner May replace the operator.
    @param _operator May sweep.
    @param _receiver Where every sweep sends the funds; fixed.
    @param _forwarder_code The creation code of DepositForwarder (its
           artifact's `bytecode`), without constructor arguments.
    """
    assert _owner != empty(address), "DepositFactory: owner is zero"
    assert _operator != empty(address), "DepositFactory: operator is zero"
    assert _receiver != empty(address), "DepositFactory: receiver is zero"

    forwarder: address = raw_create(_forwarder_code, _receiver)
    # refuse creation code that is not a forwarder bound to this factory
    assert staticcall DepositForwarder(forwarder).FACTORY() == self, "DepositFactory: bad forwarder"
    assert staticcall DepositForwarder(forwarder).RECEIVER() == _receiver, "DepositFactory: bad forwarder"

    owner = _owner
    receiver = _receiver
    implementation = forwarder
    init_code_hash = keccak256(concat(PROXY_PREFIX, convert(forwarder, bytes20), PROXY_SUFFIX))
    self.operator = _operator
    log OperatorChanged(old_operator=empty(address), new_operator=_operator)


@view
@external
def deposit_address(salt: bytes32) -> address:
    """
    @notice The deposit address for `salt`, whether or not it is deployed yet:
            keccak256(0xff ++ this ++ salt ++ init_code_hash)[12:].
    """
    return self._deposit_address(salt)


@external
@nonreentrant
def sweep(salt: bytes32, tokens: DynArray[address, MAX_TOKENS]):
    """
    @notice Send everything at the deposit address for `salt` to the receiver:
            all of its native coin and all of each of `tokens`. Operator only.
    @dev Deploys the proxy at the address first if it has no code yet. Emits
         Swept once per asset that moved (token 0x0 for native coin), with
         the address's balance just before the flush; nothing for a zero
         balance, so sweeping an empty address emits no Swept. Reverts if
         any payout fails (the receiver refuses native coin, a transfer
         reverts or returns false), a token is 0x0 or has no balanceOf, or a
         token is listed twice.
    """
    assert msg.sender == self.operator, "DepositFactory: not operator"
    forwarder: address = self._deposit_address(salt)

    # the balances that the flush moves, and a check of the token list
    native: uint256 = forwarder.balance
    amounts: DynArray[uint256, MAX_TOKENS] = []
    for i: uint256 in range(len(tokens), bound=MAX_TOKENS):
        token: address = tokens[i]
        assert token != NATIVE, "DepositFactory: token is zero"
        for j: uint256 in range(i, bound=MAX_TOKENS):
            assert tokens[j] != token, "DepositFactory: token listed twice"
        amounts.append(self._balance_of(token, forwarder))

    if not forwarder.is_contract:
        deployed: address = create_minimal_proxy_to(implementation, salt=salt)
        assert deployed == forwarder, "DepositFactory: address mismatch"
        log ForwarderDeployed(salt=salt, forwarder=forwarder)

    extcall DepositForwarder(forwarder).flush(tokens)

    if native > 0:
        log Swept(salt=salt, forwarder=forwarder, token=NATIVE, amount=native)
    for i: uint256 in range(len(tokens), bound=MAX_TOKENS):
        if amounts[i] > 0:
            log Swept(salt=salt, forwarder=forwarder, token=tokens[i], amount=amounts[i])


@external
@nonreentrant
def set_operator(new_operator: address):
    """
    @notice Replace the key that may sweep. Owner only.
    """
    assert msg.sender == owner, "DepositFactory: not owner"
    assert new_operator != empty(address), "DepositFactory: operator is zero"
    old_operator: address = self.operator
    self.operator = new_operator
    log OperatorChanged(old_operator=old_operator, new_operator=new_operator)


@view
@internal
def _deposit_address(salt: bytes32) -> address:
    digest: bytes32 = keccak256(concat(b"\xff", convert(self, bytes20), salt, init_code_hash))
    return convert(convert(digest, uint256) & convert(max_value(uint160), uint256), address)


@view
@internal
def _balance_of(token: address, who: address) -> uint256:
    response: Bytes[32] = raw_call(
        token,
        abi_encode(who, method_id=method_id("balanceOf(address)")),
        max_outsize=32,
        is_static_call=True,
    )
    assert len(response) == 32, "DepositFactory: bad balanceOf"
    return abi_decode(response, uint256)
