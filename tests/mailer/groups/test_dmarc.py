"""The DMARC decision (mailer/groups/dmarc.py) with a stub resolver: no DNS leaves the
machine. End to end (the rewritten From on a real relay) is in test_groups_posting.py."""

from __future__ import annotations

import time

import pytest

from mailer.groups.dmarc import DmarcPolicies, LookupFailed, dns_txt, organisational, parse_policy


class Stub:
    def __init__(self, records):
        self.records, self.asked = records, []

    def __call__(self, name):
        self.asked.append(name)
        found = self.records.get(name, [])
        if isinstance(found, Exception):
            raise found
        return found


def test_policies_decide_and_free_mail_is_rewritten_without_asking():
    stub = Stub(
        {
            "_dmarc.reject.example": ["v=DMARC1; p=reject; rua=mailto:x@reject.example"],
            "_dmarc.quarantine.example": ["v=DMARC1;p=quarantine"],
            "_dmarc.none.example": ["v=DMARC1; p=none"],
            "_dmarc.mail.strict.org.uk": [],
            "_dmarc.strict.org.uk": ["v=DMARC1; p=reject"],  # the organisational domain's
            "_dmarc.two.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],  # two: no policy
            "_dmarc.slow.example": LookupFailed("timed out"),
        }
    )
    policies = DmarcPolicies(("gmail.com", "outlook.com"), stub)
    assert policies.rewrite("a@reject.example") == (True, "reject.example publishes p=reject")
    assert policies.rewrite("a@Quarantine.Example")[0] is True
    assert policies.rewrite("a@none.example") == (False, "none.example publishes p=none")
    assert policies.rewrite("a@nothing.example") == (False, "nothing.example publishes p=none")
    assert policies.rewrite("lead@mail.strict.org.uk") == (True, "mail.strict.org.uk publishes p=reject")
    assert policies.rewrite("a@two.example")[0] is False
    assert policies.rewrite("a@slow.example") == (True, "DMARC lookup failed (timed out)")
    assert policies.rewrite("someone@gmail.com") == (True, "gmail.com is on the rewrite list")
    assert policies.rewrite("someone@mail.outlook.com")[0] is True
    assert policies.rewrite("no-domain") == (True, "no author domain")
    assert not any("gmail" in n or "outlook" in n for n in stub.asked)


def test_answers_are_cached_for_an_hour():
    now = [1000.0]
    stub = Stub({"_dmarc.reject.example": ["v=DMARC1; p=reject"]})
    policies = DmarcPolicies((), stub, clock=lambda: now[0])
    for _ in range(5):
        policies.rewrite("a@reject.example")
    assert stub.asked == ["_dmarc.reject.example"]
    now[0] += 3601
    policies.rewrite("a@reject.example")
    assert stub.asked == ["_dmarc.reject.example"] * 2


def test_a_resolver_that_breaks_never_loses_a_post():
    def broken(name):
        raise RuntimeError("resolver crashed")

    assert DmarcPolicies((), broken).rewrite("a@x.example") == (True, "DMARC lookup failed (RuntimeError)")


@pytest.mark.parametrize(
    "records, policy",
    [
        (["v=DMARC1; p=reject"], "reject"),
        (["v=spf1 -all", "v=DMARC1; p=Quarantine; pct=50"], "quarantine"),
        (["v=DMARC1; sp=reject"], None),
        (["p=reject"], None),
        ([], None),
    ],
)
def test_parse_policy(records, policy):
    assert parse_policy(records) == policy


def test_organisational_domain():
    assert organisational("mail.trust.nhs.uk") == "trust.nhs.uk"
    assert organisational("a.b.example.org") == "example.org"
    assert organisational("example.org") == "example.org"


def test_the_real_resolver_gives_up_within_its_timeout(monkeypatch):
    """dnspython against a nameserver that never answers (a loopback port nobody serves):
    the lookup fails within the timeout, and counts as "rewrite"."""
    import dns.resolver

    from tests.mailservers import free_port

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = free_port()
    monkeypatch.setattr(dns.resolver, "get_default_resolver", lambda: resolver)
    monkeypatch.setattr(dns.resolver, "default_resolver", resolver)
    started = time.monotonic()
    policies = DmarcPolicies((), dns_txt(0.5))
    rewrite, why = policies.rewrite("a@example.org")
    assert rewrite is True and why.startswith("DMARC lookup failed")
    assert time.monotonic() - started < 3
