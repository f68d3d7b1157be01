"""Editions and per-subscriber digests: what each subscriber gets, and how it looks."""
