# pragma version 0.4.3
# pragma evm-version cancun
# @license MIT
"""
@title NoBoolToken (test only)
@notice An ERC-20 whose transfer and transferFrom return nothing, as USDT's do
        on Ethereum mainnet. They revert on failure.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@external
def mint(_to: address, _value: uint256):
    self.balanceOf[_to] += _value


@external
def approve(_spender: address, _value: uint256):
    self.allowance[msg.sender][_spender] = _value


@external
def transfer(_to: address, _value: uint256):
    assert self.balanceOf[msg.sender] >= _value
    self.balanceOf[msg.sender] -= _value
    self.balanceOf[_to] += _value


@external
def transferFrom(_from: address, _to: address, _value: uint256):
    assert self.allowance[_from][msg.sender] >= _value
    assert self.balanceOf[_from] >= _value
    self.allowance[_from][msg.sender] -= _value
    self.balanceOf[_from] -= _value
    self.balanceOf[_to] += _value
