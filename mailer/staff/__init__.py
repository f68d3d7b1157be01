"""Staff of the editors' console: accounts and roles, passwords and two-factor codes,
login throttling, separation of duties and the audit log.

Domain code: no Flask, Dramatiq or click; functions take a session and never commit.
"""
