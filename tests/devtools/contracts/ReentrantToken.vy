# pragma version 0.4.3
# pragma evm-version cancun
# @license MIT
"""
@title ReentrantToken (test only)
@notice An ERC-20 that, while moving tokens (and when it receives native coin),
        makes one call of the owner's choosing, e.g. back into the Escrow. It
        also acts as a party (buyer or seller) through `execute`, so the call it
        makes back passes the Escrow's caller checks. The outcome of the call is
        kept in `hook_calls` and `hook_successes`; it never makes the outer call fail.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
owner: public(address)

hook_target: public(address)
hook_data: public(Bytes[256])
hook_armed: public(bool)
hook_calls: public(uint256)
hook_successes: public(uint256)


@deploy
def __init__():
    self.owner = msg.sender


@external
def decimals() -> uint8:
    return 6


@external
def mint(_to: address, _value: uint256):
    assert msg.sender == self.owner
    self.balanceOf[_to] += _value


@external
def arm(_target: address, _data: Bytes[256]):
    assert msg.sender == self.owner
    self.hook_target = _target
    self.hook_data = _data
    self.hook_armed = True


@payable
@external
def execute(_target: address, _data: Bytes[256], _value: uint256) -> Bytes[64]:
    assert msg.sender == self.owner
    return raw_call(_target, _data, max_outsize=64, value=_value)


@payable
@external
def __default__():
    self._hook()


@external
def approve(_spender: address, _value: uint256) -> bool:
    self.allowance[msg.sender][_spender] = _value
    return True


@external
def transfer(_to: address, _value: uint256) -> bool:
    self._move(msg.sender, _to, _value)
    self._hook()
    return True


@external
def transferFrom(_from: address, _to: address, _value: uint256) -> bool:
    assert self.allowance[_from][msg.sender] >= _value
    self.allowance[_from][msg.sender] -= _value
    self._move(_from, _to, _value)
    self._hook()
    return True


@internal
def _move(_from: address, _to: address, _value: uint256):
    assert self.balanceOf[_from] >= _value
    self.balanceOf[_from] -= _value
    self.balanceOf[_to] += _value


@internal
def _hook():
    if not self.hook_armed:
        return
    self.hook_armed = False  # one shot
    self.hook_calls += 1
    ok: bool = raw_call(self.hook_target, self.hook_data, revert_on_failure=False)
    if ok:
        self.hook_successes += 1
