"""Readers of the three source systems. Each yields Arrow tables shaped by the contract."""
