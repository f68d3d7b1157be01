"""Benchmarks (not tests): the figures quoted in issues and reports come from here."""
