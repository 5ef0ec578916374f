# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
# @license MIT
"""
@title EscrowV2
@notice Many escrows in one contract, each keyed by a bytes32 escrow id. A
        buyer funds an escrow once, in native coin or in an allow-listed
        ERC-20, by submitting an intent the operator signed (EIP-712
        EscrowIntent naming the id, the buyer, the seller, the token, the
        amount, the authorization expiry and a submission deadline). The buyer
        or the operator releases it to the seller; the seller or the operator
        refunds the buyer; buyer or seller may open a dispute, which the
        arbiter resolves, or, once the dispute window is over, the backup
        arbiter. The buyer always has a way out: after the authorization expiry
        of a funded escrow, or after the deadline of an unresolved dispute, the
        buyer reclaims all that is left - also while the contract is paused.
@dev    States: NONE (0) -> FUNDED (1) -> DISPUTED (2) -> CLOSED (3), with
        FUNDED -> CLOSED directly on release, a refund of everything left or a
        reclaim. `amount == released + refunded + remaining` at all times (a
        reclaim counts as refunded). Payouts are pushed; a push that fails
        (native coin refused, a token transfer that reverts or returns false)
        is credited to `owed[token][recipient]` and pulled later with
        `withdraw`. `escrowed_total` and `owed_total` track, per token, what
        the contract owes, so `recover` can only take what is above that.
        Operator, arbiter and backup arbiter are distinct keys, each replaced
        by the owner in two steps separated by `rotation_delay`. A global
        reentrancy lock guards every state-changing function.
"""

STATE_NONE: constant(uint8) = 0
STATE_FUNDED: constant(uint8) = 1
STATE_DISPUTED: constant(uint8) = 2
STATE_CLOSED: constant(uint8) = 3

# the `role` in RoleProposed / RoleChanged and the key of `proposals`
ROLE_OWNER: constant(uint8) = 0
ROLE_OPERATOR: constant(uint8) = 1
ROLE_ARBITER: constant(uint8) = 2
ROLE_BACKUP_ARBITER: constant(uint8) = 3

NATIVE: constant(address) = empty(address)

# gas handed to a native-coin recipient on a push: enough for a contract
# wallet's receive hook, small enough that a recipient burning all it gets
# costs the caller little. A recipient that needs more is paid through `owed`.
NATIVE_PUSH_GAS: constant(uint256) = 50000

# upper bound for rotation_delay and dispute_window (365 days): a guard
# against a deployment typo that would lock buyers in for years
MAX_PERIOD: constant(uint256) = 31536000

DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
INTENT_TYPEHASH: constant(bytes32) = keccak256(
    "EscrowIntent(bytes32 escrowId,address payer,address seller,address token,uint256 amount,uint256 authorizationExpiry,uint256 deadline)"
)
DOMAIN_NAME_HASH: constant(bytes32) = keccak256("OrderpayEscrow")
DOMAIN_VERSION_HASH: constant(bytes32) = keccak256("2")

# half the secp256k1 group order: for every signature with s above it there is
# a twin with s below it for the same key and message (EIP-2); only the low
# one is accepted so that a signature has one form.
# n // 2 = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
SECP256K1_HALF_N: constant(uint256) = (
    57896044618658097711785492504343953926418782139537452191302581570759080747168
)


struct EscrowData:
    buyer: address
    seller: address
    token: address
    amount: uint256
    released: uint256
    refunded: uint256
    state: uint8
    authorization_expiry: uint256
    dispute_deadline: uint256


struct Proposal:
    candidate: address
    not_before: uint256


event Deposited:
    escrow_id: indexed(bytes32)
    buyer: indexed(address)
    seller: indexed(address)
    token: address
    amount: uint256
    authorization_expiry: uint256


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
    dispute_deadline: uint256


event Resolved:
    escrow_id: indexed(bytes32)
    buyer_amount: uint256
    seller_amount: uint256
    by: address


event Reclaimed:
    escrow_id: indexed(bytes32)
    buyer: indexed(address)
    amount: uint256


event PayoutDeferred:
    token: indexed(address)
    recipient: indexed(address)
    amount: uint256


event Withdrawn:
    token: indexed(address)
    recipient: indexed(address)
    to: address
    amount: uint256


event RoleProposed:
    role: indexed(uint8)
    candidate: indexed(address)
    not_before: uint256


event RoleChanged:
    role: indexed(uint8)
    old_holder: indexed(address)
    new_holder: indexed(address)


event Paused:
    by: indexed(address)


event Unpaused:
    by: indexed(address)


event TokenAllowed:
    token: indexed(address)
    allowed: bool


event Recovered:
    token: indexed(address)
    to: indexed(address)
    amount: uint256


rotation_delay: public(immutable(uint256))
dispute_window: public(immutable(uint256))

owner: public(address)
pending_owner: public(address)
operator: public(address)
arbiter: public(address)
backup_arbiter: public(address)
proposals: public(HashMap[uint8, Proposal])

paused: public(bool)
allowed_tokens: HashMap[address, bool]

escrows: public(HashMap[bytes32, EscrowData])
owed: public(HashMap[address, HashMap[address, uint256]])  # token -> recipient -> amount
escrowed_total: public(HashMap[address, uint256])  # token -> left in open escrows
owed_total: public(HashMap[address, uint256])  # token -> sum of owed


@deploy
def __init__(
    _owner: address,
    _operator: address,
    _arbiter: address,
    _backup_arbiter: address,
    _rotation_delay: uint256,
    _dispute_window: uint256,
):
    self._check_roles(_owner, _operator, _arbiter, _backup_arbiter)
    assert _rotation_delay > 0, "EscrowV2: rotation delay is zero"
    assert _rotation_delay <= MAX_PERIOD, "EscrowV2: rotation delay too long"
    assert _dispute_window > 0, "EscrowV2: dispute window is zero"
    assert _dispute_window <= MAX_PERIOD, "EscrowV2: dispute window too long"
    rotation_delay = _rotation_delay
    dispute_window = _dispute_window
    self.owner = _owner
    self.operator = _operator
    self.arbiter = _arbiter
    self.backup_arbiter = _backup_arbiter
    log RoleChanged(role=ROLE_OWNER, old_holder=empty(address), new_holder=_owner)
    log RoleChanged(role=ROLE_OPERATOR, old_holder=empty(address), new_holder=_operator)
    log RoleChanged(role=ROLE_ARBITER, old_holder=empty(address), new_holder=_arbiter)
    log RoleChanged(
        role=ROLE_BACKUP_ARBITER, old_holder=empty(address), new_holder=_backup_arbiter
    )


# --- views ---------------------------------------------------------------------------------


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
def get_escrow(
    escrow_id: bytes32,
) -> (address, address, address, uint256, uint256, uint256, uint256, uint8, uint256, uint256):
    """
    @notice (buyer, seller, token, amount, remaining, released, refunded, state,
            authorization_expiry, dispute_deadline); dispute_deadline is 0
            until a dispute is opened.
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
        e.authorization_expiry,
        e.dispute_deadline,
    )


@view
@external
def token_allowed(token: address) -> bool:
    """
    @notice Whether `deposit` accepts `token` (the native coin, 0x0, always).
    """
    if token == NATIVE:
        return True
    return self.allowed_tokens[token]


@view
@external
def domain_separator() -> bytes32:
    """
    @notice The EIP-712 domain separator: name "OrderpayEscrow", version "2",
            this chain's id and this contract's address.
    """
    return self._domain_separator()


@view
@external
def intent_digest(
    escrow_id: bytes32,
    payer: address,
    seller: address,
    token: address,
    amount: uint256,
    authorization_expiry: uint256,
    deadline: uint256,
) -> bytes32:
    """
    @notice The EIP-712 digest of an EscrowIntent: what the operator signs.
    """
    return self._intent_digest(
        escrow_id, payer, seller, token, amount, authorization_expiry, deadline
    )


# --- escrow lifecycle ------------------------------------------------------------------------


@payable
@external
@nonreentrant
def deposit(
    escrow_id: bytes32,
    seller: address,
    token: address,
    amount: uint256,
    authorization_expiry: uint256,
    deadline: uint256,
    signature: Bytes[65],
):
    """
    @notice Fund `escrow_id` against an intent the operator signed; the caller
            is the buyer and must be the intent's payer.
    @dev For native coin pass token = 0x0 and send exactly `amount` as value.
         For an ERC-20 (allow-listed), approve this contract for `amount`
         first and send no value; the contract's balance must rise by exactly
         `amount`. `signature` is r ++ s ++ v (65 bytes, v 27 or 28, low s) by
         the current operator over `intent_digest(escrow_id, msg.sender, ...)`.
         The intent may be submitted until `deadline`; the operator may release
         until `authorization_expiry`, after which the buyer may reclaim.
    """
    assert not self.paused, "EscrowV2: paused"
    assert self.escrows[escrow_id].state == STATE_NONE, "EscrowV2: id already used"
    assert block.timestamp <= deadline, "EscrowV2: intent expired"
    assert authorization_expiry > block.timestamp, "EscrowV2: authorization expired"
    assert seller != empty(address), "EscrowV2: seller is zero"
    assert seller != msg.sender, "EscrowV2: seller is buyer"
    assert seller != self, "EscrowV2: seller is escrow"
    assert amount > 0, "EscrowV2: amount is zero"
    if token == NATIVE:
        assert msg.value == amount, "EscrowV2: value != amount"
    else:
        assert self.allowed_tokens[token], "EscrowV2: token not allowed"
        assert msg.value == 0, "EscrowV2: value with token"
        assert token.is_contract, "EscrowV2: token has no code"
    digest: bytes32 = self._intent_digest(
        escrow_id, msg.sender, seller, token, amount, authorization_expiry, deadline
    )
    assert self._recover(digest, signature) == self.operator, "EscrowV2: bad signature"

    # effects
    self.escrows[escrow_id] = EscrowData(
        buyer=msg.sender,
        seller=seller,
        token=token,
        amount=amount,
        released=0,
        refunded=0,
        state=STATE_FUNDED,
        authorization_expiry=authorization_expiry,
        dispute_deadline=0,
    )
    self.escrowed_total[token] += amount
    log Deposited(
        escrow_id=escrow_id,
        buyer=msg.sender,
        seller=seller,
        token=token,
        amount=amount,
        authorization_expiry=authorization_expiry,
    )

    # interactions
    if token != NATIVE:
        held_before: uint256 = self._balance_of(token)
        self._safe_transfer_from(token, msg.sender, self, amount)
        held_after: uint256 = self._balance_of(token)
        assert held_after >= held_before, "EscrowV2: amount not received"
        assert held_after - held_before == amount, "EscrowV2: amount not received"


@external
@nonreentrant
def release(escrow_id: bytes32):
    """
    @notice Pay the seller everything the escrow still holds and close it.
    @dev The buyer, while funded; the operator, while funded and not past the
         authorization expiry. Refused while paused.
    """
    assert not self.paused, "EscrowV2: paused"
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_FUNDED, "EscrowV2: not funded"
    if msg.sender != e.buyer:
        assert msg.sender == self.operator, "EscrowV2: not buyer or operator"
        assert block.timestamp <= e.authorization_expiry, "EscrowV2: authorization expired"
    left: uint256 = e.amount - e.released - e.refunded

    self.escrows[escrow_id].released = e.released + left
    self.escrows[escrow_id].state = STATE_CLOSED
    self.escrowed_total[e.token] -= left
    log Released(escrow_id=escrow_id, seller=e.seller, amount=left, by=msg.sender)

    self._pay(e.token, e.seller, left)


@external
@nonreentrant
def refund(escrow_id: bytes32, amount: uint256):
    """
    @notice Return `amount` to the buyer; the rest stays held. Refunding all
            that is left closes the escrow.
    @dev Seller or operator, while funded (also past the authorization
         expiry). Refused while paused.
    """
    assert not self.paused, "EscrowV2: paused"
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_FUNDED, "EscrowV2: not funded"
    assert msg.sender == e.seller or msg.sender == self.operator, "EscrowV2: not seller or operator"
    left: uint256 = e.amount - e.released - e.refunded
    assert amount > 0, "EscrowV2: amount is zero"
    assert amount <= left, "EscrowV2: amount > remaining"

    self.escrows[escrow_id].refunded = e.refunded + amount
    if amount == left:
        self.escrows[escrow_id].state = STATE_CLOSED
    self.escrowed_total[e.token] -= amount
    log Refunded(
        escrow_id=escrow_id, buyer=e.buyer, amount=amount, remaining=left - amount, by=msg.sender
    )

    self._pay(e.token, e.buyer, amount)


@external
@nonreentrant
def dispute(escrow_id: bytes32):
    """
    @notice Freeze the escrow for the arbiter. Buyer or seller, while funded
            and not past the authorization expiry; refused while paused.
    @dev Sets dispute_deadline = now + dispute_window. After it the backup
         arbiter may resolve and the buyer may reclaim.
    """
    assert not self.paused, "EscrowV2: paused"
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_FUNDED, "EscrowV2: not funded"
    assert msg.sender == e.buyer or msg.sender == e.seller, "EscrowV2: not buyer or seller"
    assert block.timestamp <= e.authorization_expiry, "EscrowV2: authorization expired"

    closes_at: uint256 = block.timestamp + dispute_window
    self.escrows[escrow_id].state = STATE_DISPUTED
    self.escrows[escrow_id].dispute_deadline = closes_at
    log Disputed(escrow_id=escrow_id, by=msg.sender, dispute_deadline=closes_at)


@external
@nonreentrant
def resolve(escrow_id: bytes32, buyer_amount: uint256, seller_amount: uint256):
    """
    @notice Split what is left between buyer and seller and close the escrow.
    @dev The arbiter, while disputed; the backup arbiter, while disputed and
         past the dispute deadline. The two amounts must add up to what is
         left. Refused while paused.
    """
    assert not self.paused, "EscrowV2: paused"
    is_backup: bool = msg.sender != self.arbiter
    if is_backup:
        assert msg.sender == self.backup_arbiter, "EscrowV2: not arbiter"
    e: EscrowData = self.escrows[escrow_id]
    assert e.state == STATE_DISPUTED, "EscrowV2: not disputed"
    if is_backup:
        assert block.timestamp > e.dispute_deadline, "EscrowV2: dispute window open"
    left: uint256 = e.amount - e.released - e.refunded
    assert buyer_amount + seller_amount == left, "EscrowV2: split != remaining"

    self.escrows[escrow_id].refunded = e.refunded + buyer_amount
    self.escrows[escrow_id].released = e.released + seller_amount
    self.escrows[escrow_id].state = STATE_CLOSED
    self.escrowed_total[e.token] -= left
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


@external
@nonreentrant
def reclaim(escrow_id: bytes32):
    """
    @notice The buyer takes back all that is left and closes the escrow:
            when funded and past the authorization expiry, or when disputed
            and past the dispute deadline. Works while paused.
    """
    e: EscrowData = self.escrows[escrow_id]
    if e.state == STATE_FUNDED:
        assert msg.sender == e.buyer, "EscrowV2: not buyer"
        assert block.timestamp > e.authorization_expiry, "EscrowV2: authorization not expired"
    elif e.state == STATE_DISPUTED:
        assert msg.sender == e.buyer, "EscrowV2: not buyer"
        assert block.timestamp > e.dispute_deadline, "EscrowV2: dispute window open"
    else:
        raise "EscrowV2: not funded"
    left: uint256 = e.amount - e.released - e.refunded

    self.escrows[escrow_id].refunded = e.refunded + left
    self.escrows[escrow_id].state = STATE_CLOSED
    self.escrowed_total[e.token] -= left
    log Reclaimed(escrow_id=escrow_id, buyer=e.buyer, amount=left)

    self._pay(e.token, e.buyer, left)


@external
@nonreentrant
def withdraw(token: address):
    """
    @notice Take what is owed to the caller in `token` (0x0: native coin), to
            the caller. Works while paused.
    """
    self._withdraw(token, msg.sender)


@external
@nonreentrant
def withdraw_to(token: address, to: address):
    """
    @notice Take what is owed to the caller in `token`, to `to` (for a caller
            that cannot receive it itself). Works while paused.
    """
    assert to != empty(address), "EscrowV2: to is zero"
    self._withdraw(token, to)


# --- administration -----------------------------------------------------------------------


@external
@nonreentrant
def propose_operator(candidate: address):
    """
    @notice Owner: name the next operator; `accept_operator` may install it
            `rotation_delay` seconds from now. 0x0 withdraws the proposal.
    """
    self._propose(ROLE_OPERATOR, candidate)


@external
@nonreentrant
def propose_arbiter(candidate: address):
    """
    @notice Owner: name the next arbiter (see `propose_operator`).
    """
    self._propose(ROLE_ARBITER, candidate)


@external
@nonreentrant
def propose_backup_arbiter(candidate: address):
    """
    @notice Owner: name the next backup arbiter (see `propose_operator`).
    """
    self._propose(ROLE_BACKUP_ARBITER, candidate)


@external
@nonreentrant
def accept_operator():
    """
    @notice Owner: install the proposed operator once the delay is over.
            Intents signed by the old operator are refused from then on.
    """
    self._accept(ROLE_OPERATOR)


@external
@nonreentrant
def accept_arbiter():
    """
    @notice Owner: install the proposed arbiter once the delay is over.
    """
    self._accept(ROLE_ARBITER)


@external
@nonreentrant
def accept_backup_arbiter():
    """
    @notice Owner: install the proposed backup arbiter once the delay is over.
    """
    self._accept(ROLE_BACKUP_ARBITER)


@external
@nonreentrant
def transfer_ownership(new_owner: address):
    """
    @notice Owner: offer ownership to `new_owner`, who takes it with
            `accept_ownership`. 0x0 withdraws the offer.
    """
    self._only_owner()
    if new_owner != empty(address):
        self._check_roles(new_owner, self.operator, self.arbiter, self.backup_arbiter)
    self.pending_owner = new_owner
    log RoleProposed(role=ROLE_OWNER, candidate=new_owner, not_before=block.timestamp)


@external
@nonreentrant
def accept_ownership():
    """
    @notice The pending owner takes ownership.
    """
    candidate: address = self.pending_owner
    assert candidate != empty(address) and msg.sender == candidate, "EscrowV2: not pending owner"
    self._check_roles(candidate, self.operator, self.arbiter, self.backup_arbiter)
    previous: address = self.owner
    self.owner = candidate
    self.pending_owner = empty(address)
    log RoleChanged(role=ROLE_OWNER, old_holder=previous, new_holder=candidate)


@external
@nonreentrant
def pause():
    """
    @notice Owner: refuse deposit, release, refund, dispute and resolve until
            `unpause`. Reclaim and withdrawals go on.
    """
    self._only_owner()
    assert not self.paused, "EscrowV2: paused"
    self.paused = True
    log Paused(by=msg.sender)


@external
@nonreentrant
def unpause():
    """
    @notice Owner: lift a pause.
    """
    self._only_owner()
    assert self.paused, "EscrowV2: not paused"
    self.paused = False
    log Unpaused(by=msg.sender)


@external
@nonreentrant
def set_token_allowed(token: address, allowed: bool):
    """
    @notice Owner: accept (or stop accepting) `token` for new deposits.
            Escrows already funded in a token are unaffected by removing it.
    """
    self._only_owner()
    assert token != NATIVE, "EscrowV2: native coin always allowed"
    if allowed:
        assert token.is_contract, "EscrowV2: token has no code"
    self.allowed_tokens[token] = allowed
    log TokenAllowed(token=token, allowed=allowed)


@external
@nonreentrant
def recover(token: address, to: address):
    """
    @notice Owner: send `to` what this contract holds of `token` (0x0: native
            coin) above what open escrows and owed balances account for.
    """
    self._only_owner()
    assert to != empty(address), "EscrowV2: to is zero"
    held: uint256 = 0
    if token == NATIVE:
        held = self.balance
    else:
        held = self._balance_of(token)
    reserved: uint256 = self.escrowed_total[token] + self.owed_total[token]
    assert held > reserved, "EscrowV2: nothing to recover"
    surplus: uint256 = held - reserved
    log Recovered(token=token, to=to, amount=surplus)
    self._send_or_revert(token, to, surplus)


# --- internals ----------------------------------------------------------------------------


@view
@internal
def _only_owner():
    assert msg.sender == self.owner, "EscrowV2: not owner"


@pure
@internal
def _check_roles(_owner: address, _operator: address, _arbiter: address, _backup: address):
    assert _owner != empty(address), "EscrowV2: owner is zero"
    assert _operator != empty(address), "EscrowV2: operator is zero"
    assert _arbiter != empty(address), "EscrowV2: arbiter is zero"
    assert _backup != empty(address), "EscrowV2: backup arbiter is zero"
    assert _operator != _arbiter, "EscrowV2: operator is arbiter"
    assert _operator != _backup, "EscrowV2: operator is backup arbiter"
    assert _arbiter != _backup, "EscrowV2: arbiter is backup arbiter"
    assert _operator != _owner, "EscrowV2: operator is owner"


@view
@internal
def _roles_with(role: uint8, holder: address) -> (address, address, address):
    # (operator, arbiter, backup arbiter) as they would be with `holder` in `role`
    op: address = self.operator
    arb: address = self.arbiter
    backup: address = self.backup_arbiter
    if role == ROLE_OPERATOR:
        op = holder
    elif role == ROLE_ARBITER:
        arb = holder
    else:
        backup = holder
    return op, arb, backup


@internal
def _propose(role: uint8, candidate: address):
    self._only_owner()
    if candidate == empty(address):
        self.proposals[role] = empty(Proposal)
        log RoleProposed(role=role, candidate=empty(address), not_before=0)
        return
    op: address = empty(address)
    arb: address = empty(address)
    backup: address = empty(address)
    op, arb, backup = self._roles_with(role, candidate)
    self._check_roles(self.owner, op, arb, backup)
    ready_at: uint256 = block.timestamp + rotation_delay
    self.proposals[role] = Proposal(candidate=candidate, not_before=ready_at)
    log RoleProposed(role=role, candidate=candidate, not_before=ready_at)


@internal
def _accept(role: uint8):
    self._only_owner()
    p: Proposal = self.proposals[role]
    assert p.candidate != empty(address), "EscrowV2: nothing proposed"
    assert block.timestamp >= p.not_before, "EscrowV2: rotation delay not over"
    op: address = empty(address)
    arb: address = empty(address)
    backup: address = empty(address)
    op, arb, backup = self._roles_with(role, p.candidate)
    # checked again: another role may have changed since the proposal
    self._check_roles(self.owner, op, arb, backup)

    previous: address = empty(address)
    if role == ROLE_OPERATOR:
        previous = self.operator
    elif role == ROLE_ARBITER:
        previous = self.arbiter
    else:
        previous = self.backup_arbiter
    self.operator = op
    self.arbiter = arb
    self.backup_arbiter = backup
    self.proposals[role] = empty(Proposal)
    log RoleChanged(role=role, old_holder=previous, new_holder=p.candidate)


@internal
def _withdraw(token: address, to: address):
    due: uint256 = self.owed[token][msg.sender]
    assert due > 0, "EscrowV2: nothing owed"
    self.owed[token][msg.sender] = 0
    self.owed_total[token] -= due
    log Withdrawn(token=token, recipient=msg.sender, to=to, amount=due)
    self._send_or_revert(token, to, due)


@internal
def _pay(token: address, to: address, amount: uint256):
    # push; when the push fails, keep the amount for `to` to withdraw
    delivered: bool = False
    if token == NATIVE:
        delivered = raw_call(
            to, b"", value=amount, gas=NATIVE_PUSH_GAS, revert_on_failure=False
        )
    else:
        delivered = self._try_transfer(token, to, amount)
    if not delivered:
        self.owed[token][to] += amount
        self.owed_total[token] += amount
        log PayoutDeferred(token=token, recipient=to, amount=amount)


@internal
def _send_or_revert(token: address, to: address, amount: uint256):
    # the caller asked for this payout, so it gets all gas and no fallback
    if token == NATIVE:
        sent: bool = raw_call(to, b"", value=amount, revert_on_failure=False)
        assert sent, "EscrowV2: native transfer failed"
    else:
        assert self._try_transfer(token, to, amount), "EscrowV2: transfer failed"


@internal
def _try_transfer(token: address, to: address, amount: uint256) -> bool:
    # true when the token neither reverted nor answered false; a token that
    # answers nothing (USDT style) counts as success
    ok: bool = False
    answer: Bytes[32] = b""
    ok, answer = raw_call(
        token,
        abi_encode(to, amount, method_id=method_id("transfer(address,uint256)")),
        max_outsize=32,
        revert_on_failure=False,
    )
    if not ok:
        return False
    if len(answer) == 0:
        return True
    return len(answer) == 32 and extract32(answer, 0, output_type=uint256) == 1


@internal
def _safe_transfer_from(token: address, owner: address, to: address, amount: uint256):
    answer: Bytes[32] = raw_call(
        token,
        abi_encode(owner, to, amount, method_id=method_id("transferFrom(address,address,uint256)")),
        max_outsize=32,
    )
    if len(answer) != 0:
        assert len(answer) == 32, "EscrowV2: transferFrom failed"
        assert extract32(answer, 0, output_type=uint256) == 1, "EscrowV2: transferFrom failed"


@view
@internal
def _balance_of(token: address) -> uint256:
    answer: Bytes[32] = raw_call(
        token,
        abi_encode(self, method_id=method_id("balanceOf(address)")),
        max_outsize=32,
        is_static_call=True,
    )
    assert len(answer) == 32, "EscrowV2: bad balanceOf"
    return extract32(answer, 0, output_type=uint256)


@view
@internal
def _domain_separator() -> bytes32:
    # built per call rather than at deploy, so it always names the current chain
    return keccak256(
        abi_encode(DOMAIN_TYPEHASH, DOMAIN_NAME_HASH, DOMAIN_VERSION_HASH, chain.id, self)
    )


@view
@internal
def _intent_digest(
    escrow_id: bytes32,
    payer: address,
    seller: address,
    token: address,
    amount: uint256,
    authorization_expiry: uint256,
    deadline: uint256,
) -> bytes32:
    struct_hash: bytes32 = keccak256(
        abi_encode(
            INTENT_TYPEHASH,
            escrow_id,
            payer,
            seller,
            token,
            amount,
            authorization_expiry,
            deadline,
        )
    )
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@pure
@internal
def _recover(digest: bytes32, signature: Bytes[65]) -> address:
    # 0x0 for anything but a 65-byte r ++ s ++ v with v 27/28 and a low s;
    # callers compare the result with a non-zero key, so 0x0 never matches
    if len(signature) != 65:
        return empty(address)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v != 27 and v != 28:
        return empty(address)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    if s > SECP256K1_HALF_N:
        return empty(address)
    r: uint256 = extract32(signature, 0, output_type=uint256)
    return ecrecover(digest, v, r, s)
