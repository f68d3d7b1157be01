"""The audience: subscribers, their choices, consent ledger, tokens and public pages.

Everything here except ``subscribers.views`` is free of Flask and Dramatiq.
"""
