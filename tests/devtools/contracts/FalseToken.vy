# pragma version 0.4.3
# pragma evm-version cancun
# @license MIT
"""
@title FalseToken (test only)
@notice An ERC-20 that reports failure by returning false instead of reverting,
        and with `fee_bps` set keeps a fee out of every transferFrom (so the
        receiver gets less than asked).
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
fail_transfers: public(bool)
fee_bps: public(uint256)


@external
def mint(_to: address, _value: uint256):
    self.balanceOf[_to] += _value


@external
def set_fail_transfers(_fail: bool):
    self.fail_transfers = _fail


@external
def set_fee_bps(_fee_bps: uint256):
    self.fee_bps = _fee_bps


@external
def approve(_spender: address, _value: uint256) -> bool:
    self.allowance[msg.sender][_spender] = _value
    return True


@external
def transfer(_to: address, _value: uint256) -> bool:
    if self.fail_transfers or self.balanceOf[msg.sender] < _value:
        return False
    self.balanceOf[msg.sender] -= _value
    self.balanceOf[_to] += _value
    return True


@external
def transferFrom(_from: address, _to: address, _value: uint256) -> bool:
    if self.fail_transfers:
        return False
    if self.allowance[_from][msg.sender] < _value or self.balanceOf[_from] < _value:
        return False
    fee: uint256 = _value * self.fee_bps // 10000
    self.allowance[_from][msg.sender] -= _value
    self.balanceOf[_from] -= _value
    self.balanceOf[_to] += _value - fee
    return True
