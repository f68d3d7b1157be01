"""Delivery: the ledger of who gets which edition, fan-out, sending, limits and bounces."""
