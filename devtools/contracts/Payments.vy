# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
# @license MIT
"""
@title Payments
@notice Direct payments against intents the platform signs. For each payment
        the platform's signer signs an EIP-712 PaymentIntent (payment id, token,
        amount, recipient, fee, fee recipient, deadline); the payer submits it
        with `pay`, which moves exactly `amount` from the payer - `amount - fee`
        to the recipient and `fee` to the fee recipient - or reverts. Nothing is
        held by this contract. Each payment id is paid at most once, and the
        `Paid` event names it.
@dev    Native coin is `token == 0x0`. ERC-20 tokens are pulled straight from
        the payer to the recipients with `transferFrom` (approve this contract
        first); a token that delivers less than asked (fee-on-transfer) is
        refused. The owner may rotate the signer; intents signed by the old one
        are refused from then on. Checks-effects-interactions plus a global
        reentrancy lock on every state-changing function.
"""

NATIVE: constant(address) = empty(address)

# EIP-712
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
INTENT_TYPEHASH: constant(bytes32) = keccak256(
    "PaymentIntent(bytes32 paymentId,address token,uint256 amount,address recipient,uint256 feeAmount,address feeRecipient,uint256 deadline)"
)
NAME_HASH: constant(bytes32) = keccak256("OrderpayPayments")
VERSION_HASH: constant(bytes32) = keccak256("1")

# secp256k1 group order // 2 (0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0):
# a signature with a larger s is the malleable twin of one with a smaller s (EIP-2)
# and is refused
HALF_CURVE_ORDER: constant(uint256) = (
    57896044618658097711785492504343953926418782139537452191302581570759080747168
)


event Paid:
    payment_id: indexed(bytes32)
    payer: indexed(address)
    token: indexed(address)
    amount: uint256
    fee_amount: uint256
    recipient: address
    fee_recipient: address


event SignerChanged:
    old_signer: indexed(address)
    new_signer: indexed(address)


owner: public(address)
signer: public(address)

used: public(HashMap[bytes32, bool])


@deploy
def __init__(_owner: address, _signer: address):
    assert _owner != empty(address), "Payments: owner is zero"
    assert _signer != empty(address), "Payments: signer is zero"
    self.owner = _owner
    self.signer = _signer
    log SignerChanged(old_signer=empty(address), new_signer=_signer)


@view
@external
def domain_separator() -> bytes32:
    """
    @notice The EIP-712 domain separator: name "OrderpayPayments", version "1",
            this chain's id and this contract's address.
    """
    return self._domain_separator()


@view
@external
def intent_digest(
    payment_id: bytes32,
    token: address,
    amount: uint256,
    recipient: address,
    fee_amount: uint256,
    fee_recipient: address,
    deadline: uint256,
) -> bytes32:
    """
    @notice The EIP-712 digest of a PaymentIntent: what the signer signs.
    """
    return self._intent_digest(
        payment_id, token, amount, recipient, fee_amount, fee_recipient, deadline
    )


@payable
@external
@nonreentrant
def pay(
    payment_id: bytes32,
    token: address,
    amount: uint256,
    recipient: address,
    fee_amount: uint256,
    fee_recipient: address,
    deadline: uint256,
    signature: Bytes[65],
):
    """
    @notice Pay a signed intent; the caller is the payer. `amount` is the total
            the payer pays: `amount - fee_amount` goes to `recipient` and
            `fee_amount` to `fee_recipient`.
    @dev For native coin pass token = 0x0 and send exactly `amount` as value.
         For an ERC-20, approve this contract for `amount` first and send no
         value. `signature` is r ++ s ++ v (65 bytes, v 27 or 28) by `signer`
         over `intent_digest(...)`.
    """
    assert not self.used[payment_id], "Payments: id used"
    assert block.timestamp <= deadline, "Payments: expired"
    assert amount > 0, "Payments: amount is zero"
    assert fee_amount <= amount, "Payments: fee > amount"
    assert recipient != empty(address), "Payments: recipient is zero"
    if fee_amount > 0:
        assert fee_recipient != empty(address), "Payments: fee recipient is zero"
    if token == NATIVE:
        assert msg.value == amount, "Payments: wrong value"
    else:
        assert msg.value == 0, "Payments: value with token"
        assert token.is_contract, "Payments: token has no code"
    digest: bytes32 = self._intent_digest(
        payment_id, token, amount, recipient, fee_amount, fee_recipient, deadline
    )
    assert self._recover(digest, signature) == self.signer, "Payments: bad signature"

    # effects
    self.used[payment_id] = True
    log Paid(
        payment_id=payment_id,
        payer=msg.sender,
        token=token,
        amount=amount,
        fee_amount=fee_amount,
        recipient=recipient,
        fee_recipient=fee_recipient,
    )

    # interactions
    net: uint256 = amount - fee_amount
    if token == NATIVE:
        # all gas is forwarded (a contract wallet may need more than 2300);
        # the reentrancy lock and the id marked used above make that safe.
        if net > 0:
            raw_call(recipient, b"", value=net)
        if fee_amount > 0:
            raw_call(fee_recipient, b"", value=fee_amount)
    else:
        if net > 0:
            self._pull(token, msg.sender, recipient, net)
        if fee_amount > 0:
            self._pull(token, msg.sender, fee_recipient, fee_amount)


@external
@nonreentrant
def set_signer(new_signer: address):
    """
    @notice Replace the key whose intents `pay` accepts. Owner only.
    """
    assert msg.sender == self.owner, "Payments: not owner"
    assert new_signer != empty(address), "Payments: signer is zero"
    old_signer: address = self.signer
    self.signer = new_signer
    log SignerChanged(old_signer=old_signer, new_signer=new_signer)


@view
@internal
def _domain_separator() -> bytes32:
    # computed on every call (not cached at deploy) so it follows chain.id
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@view
@internal
def _intent_digest(
    payment_id: bytes32,
    token: address,
    amount: uint256,
    recipient: address,
    fee_amount: uint256,
    fee_recipient: address,
    deadline: uint256,
) -> bytes32:
    struct_hash: bytes32 = keccak256(
        abi_encode(
            INTENT_TYPEHASH,
            payment_id,
            token,
            amount,
            recipient,
            fee_amount,
            fee_recipient,
            deadline,
        )
    )
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@pure
@internal
def _recover(digest: bytes32, signature: Bytes[65]) -> address:
    """
    @dev The signer of `digest`, or 0x0 when `signature` is malformed (wrong
         length, v not 27 or 28, s in the upper half of the curve order) or
         recovers nothing. The caller compares with `signer`, never 0x0.
    """
    if len(signature) != 65:
        return empty(address)
    r: uint256 = extract32(signature, 0, output_type=uint256)
    s: uint256 = extract32(signature, 32, output_type=uint256)
    v: uint256 = convert(convert(slice(signature, 64, 1), bytes1), uint256)
    if v != 27 and v != 28:
        return empty(address)
    if s > HALF_CURVE_ORDER:
        return empty(address)
    return ecrecover(digest, v, r, s)


@internal
def _pull(token: address, payer: address, to: address, amount: uint256):
    # a token that delivers less than `amount` (fee-on-transfer) is refused
    before: uint256 = self._balance_of(token, to)
    self._safe_transfer_from(token, payer, to, amount)
    assert self._balance_of(token, to) - before == amount, "Payments: amount not received"


@view
@internal
def _balance_of(token: address, who: address) -> uint256:
    response: Bytes[32] = raw_call(
        token,
        abi_encode(who, method_id=method_id("balanceOf(address)")),
        max_outsize=32,
        is_static_call=True,
    )
    assert len(response) == 32, "Payments: bad balanceOf"
    return abi_decode(response, uint256)


@internal
def _safe_transfer_from(token: address, owner: address, to: address, amount: uint256):
    # tokens that return nothing are accepted; a returned value must be true
    response: Bytes[32] = raw_call(
        token,
        abi_encode(owner, to, amount, method_id=method_id("transferFrom(address,address,uint256)")),
        max_outsize=32,
    )
    if len(response) != 0:
        assert abi_decode(response, bool), "Payments: transferFrom failed"
