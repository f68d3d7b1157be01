"""Delivery: the ledger of who gets which edition, messages, transports and actors."""
