# pragma version 0.4.3
# pragma evm-version cancun
# @license MIT
"""
@title RejectingReceiver (test only)
@notice A contract party (buyer or seller) that its owner drives with `execute`
        and that, depending on `mode`, accepts native coin (0), refuses it with
        a revert (1), or burns all the gas it is given (2).
"""

MODE_ACCEPT: constant(uint8) = 0
MODE_REJECT: constant(uint8) = 1
MODE_BURN: constant(uint8) = 2

owner: public(address)
mode: public(uint8)
sink: HashMap[uint256, uint256]


@deploy
def __init__():
    self.owner = msg.sender
    self.mode = MODE_REJECT


@external
def set_mode(_mode: uint8):
    assert msg.sender == self.owner
    assert _mode <= MODE_BURN
    self.mode = _mode


@payable
@external
def execute(_target: address, _data: Bytes[1024], _value: uint256) -> Bytes[64]:
    assert msg.sender == self.owner
    return raw_call(_target, _data, max_outsize=64, value=_value)


@payable
@external
def __default__():
    if self.mode == MODE_REJECT:
        raise "RejectingReceiver: no thanks"
    if self.mode == MODE_BURN:
        for i: uint256 in range(100000):
            self.sink[i] = block.number + i
