"""EVM chains: direct transfers (provider "chain") and the escrow contract (provider "escrow")."""
