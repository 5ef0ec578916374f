# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
# @license MIT
"""
@title Escrow
@notice One contract holds many escrows, each keyed by a bytes32 escrow id that
        the platform derives from its payment id. A buyer funds an escrow once,
        in native coin or in an ERC-20 token; the buyer or the operator releases
        it to the seller; the seller or the operator refunds the buyer, in full
        or in part; buyer or seller may open a dispute, which only the arbiter
        resolves by splitting what is left.
@dev    States: NONE (0) -> FUNDED (1) -> DISPUTED (2) -> CLOSED (3), with
        FUNDED -> CLOSED directly on release or on a refund of everything left.
        `amount == released + refunded + remaining` holds at all times.
        Every state change emits an event. Checks-effects-interactions plus a
        global reentrancy lock on every state-changing function.
"""

STATE_NONE: constant(uint8) = 0
STATE_FUNDED: constant(uint8) = 1
STATE_DISPUTED: constant(uint8) = 2
STATE_CLOSED: constant(uint8) = 3

NATIVE: constant(address) = empty(address)


struct EscrowData:
    buyer: address
    seller: address
    token: address
    amount: uint256
    released: uint256
    refunded: uint256
    state: uint8


event Deposited:
    escrow_id: indexed(bytes32)
    buyer: indexed(address)
    seller: indexed(address)
    token: address
    amount: uint256


event Released:
    escrow_id: indexed(bytes32)
    seller: indexed(address)
    amount: uint256
    by: address


event Refunded:
    escrow_id: indexed(bytes32)
    buyer: indexed(address)
    amount: uint256
    remaining: uint256
    by: address


event Disputed:
    escrow_id: indexed(bytes32)
    by: indexed(address)


event Resolved:
    escrow_id: indexed(bytes32)
    buyer_amount: uint256
    seller_amount: uint256
    by: address


operator: public(immutable(address))
arbiter: public(immutable(address))

escrows: public(HashMap[bytes32, EscrowData])


@deploy
def __init__(_operator: address, _arbiter: address):
    assert _operator != empty(address), "Escrow: operator is zero"
    assert _arbiter != empty(address), "Escrow: arbiter is zero"
    operator = _operator
    arbiter = _arbiter


@view
@external
def remaining(escrow_id: bytes32) -> uint256:
    """
    @notice What the escrow still holds.
    """
    e: EscrowData = self.escrows[escrow_id]
    return e.amount - e.released - e.refunded


@view
@external
def get_escrow(escrow_id: bytes32) -> (address, address, address, uint256, uint256, uint256, uint256, uint8):
    """
    @notice (buyer, seller, token, amount, remaining, released, refunded, state)
    """
    e: EscrowData = self.escrows[escrow_id]
    return (
        e.buyer,
        e.seller,
        e.token,
        e.amount,
        e.amount - e.released - e.refunded,
        e.released,
        e.refunded,
        e.state,
    )


@payable
@external
@nonreentrant
def deposit(escrow_id: bytes32, seller: address, token: address, amount: uint256):
    """
    @notice Fund `escrow_id` for `seller`; the caller is the buyer.
    @dev For native coin pass token = 0x0 and send exactly `amount` as value.
         For an ERC-20, approve this contract for `amount` first; a token that
         delivers less than `amount` (fee-on-transfer) is refused.
    """
    assert self.escrows[escrow_id].state == STATE_NONE, "Escrow: id already used"
    assert seller != empty(address), "Escrow: seller is zero"
    assert seller != msg.sender, "Escrow: seller is buyer"
    assert amount > 0, "Escrow: amount is zero"
    if token == NATIVE:
        assert msg.value == amount, "Escrow: value != amount"
    else:
        assert msg.value == 0, "Escrow: value with token"
        assert token.is_contract, "Escrow: token has no code"

    # effects
    self.escrows[escrow_id] = EscrowData(
        buyer=msg.sender,
        seller=seller,
        token=token,
        amount=amount,
        released=0,
        refunded=0,
        state=STATE_FUNDED,
    )
    log Deposited(escrow_id=escrow_id, buyer=msg.sender, seller=seller, token=token, amount=amount)

    # interactions
    if token != NATIVE:
        before: uint256 = self._balance_of(token)
        self._safe_transfer_from(token, msg.sender, self, amount)
        assert self._balance_of(token) - before == amount, "Escrow: amount not received"


@external
@nonreentrant
def release(escrow_id: bytes32):
    """
    @notice Pay the seller everything the escrow still holds and close it.
    @dev Buyer or operator only, while funded (not disputed).
    """
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_FUNDED, "Escrow: not funded"
    assert msg.sender == e.buyer or msg.sender == operator, "Escrow: not buyer or operator"
    left: uint256 = e.amount - e.released - e.refunded

    self.escrows[escrow_id].released = e.released + left
    self.escrows[escrow_id].state = STATE_CLOSED
    log Released(escrow_id=escrow_id, seller=e.seller, amount=left, by=msg.sender)

    self._pay(e.token, e.seller, left)


@external
@nonreentrant
def refund(escrow_id: bytes32, amount: uint256):
    """
    @notice Return `amount` to the buyer; the rest stays held. Refunding all
            that is left closes the escrow.
    @dev Seller or operator only, while funded (not disputed).
    """
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_FUNDED, "Escrow: not funded"
    assert msg.sender == e.seller or msg.sender == operator, "Escrow: not seller or operator"
    left: uint256 = e.amount - e.released - e.refunded
    assert amount > 0, "Escrow: amount is zero"
    assert amount <= left, "Escrow: amount > remaining"

    self.escrows[escrow_id].refunded = e.refunded + amount
    if amount == left:
        self.escrows[escrow_id].state = STATE_CLOSED
    log Refunded(
        escrow_id=escrow_id, buyer=e.buyer, amount=amount, remaining=left - amount, by=msg.sender
    )

    self._pay(e.token, e.buyer, amount)


@external
@nonreentrant
def dispute(escrow_id: bytes32):
    """
    @notice Freeze the escrow until the arbiter resolves it. Buyer or seller only.
    """
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_FUNDED, "Escrow: not funded"
    assert msg.sender == e.buyer or msg.sender == e.seller, "Escrow: not buyer or seller"

    self.escrows[escrow_id].state = STATE_DISPUTED
    log Disputed(escrow_id=escrow_id, by=msg.sender)


@external
@nonreentrant
def resolve(escrow_id: bytes32, buyer_amount: uint256, seller_amount: uint256):
    """
    @notice Split what is left between buyer and seller and close the escrow.
    @dev Arbiter only, while disputed; the two amounts must add up to what is left.
    """
    assert msg.sender == arbiter, "Escrow: not arbiter"
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_DISPUTED, "Escrow: not disputed"
    left: uint256 = e.amount - e.released - e.refunded
    assert buyer_amount + seller_amount == left, "Escrow: split != remaining"

    self.escrows[escrow_id].refunded = e.refunded + buyer_amount
    self.escrows[escrow_id].released = e.released + seller_amount
    self.escrows[escrow_id].state = STATE_CLOSED
    log Resolved(
        escrow_id=escrow_id,
        buyer_amount=buyer_amount,
        seller_amount=seller_amount,
        by=msg.sender,
    )

    if buyer_amount > 0:
        self._pay(e.token, e.buyer, buyer_amount)
    if seller_amount > 0:
        self._pay(e.token, e.seller, seller_amount)


@internal
def _pay(token: address, to: address, amount: uint256):
    if token == NATIVE:
        # all gas is forwarded (a contract wallet may need more than 2300);
        # the reentrancy lock and the state written above make that safe.
        raw_call(to, b"", value=amount)
    else:
        self._safe_transfer(token, to, amount)


@view
@internal
def _balance_of(token: address) -> uint256:
    response: Bytes[32] = raw_call(
        token,
        abi_encode(self, method_id=method_id("balanceOf(address)")),
        max_outsize=32,
        is_static_call=True,
    )
    assert len(response) == 32, "Escrow: bad balanceOf"
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
        assert abi_decode(response, bool), "Escrow: transfer failed"


@internal
def _safe_transfer_from(token: address, owner: address, to: address, amount: uint256):
    response: Bytes[32] = raw_call(
        token,
        abi_encode(owner, to, amount, method_id=method_id("transferFrom(address,address,uint256)")),
        max_outsize=32,
    )
    if len(response) != 0:
        assert abi_decode(response, bool), "Escrow: transferFrom failed"
