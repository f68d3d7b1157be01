"""The audience: subscribers, their choices, consent ledger and tokens.

Domain code, free of Flask and Dramatiq: the public pages are in
:mod:`mailer.web.subscribers`, the housekeeping job in :mod:`mailer.actors.housekeeping`.
"""
