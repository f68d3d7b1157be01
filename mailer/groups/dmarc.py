"""Does the author's domain forbid us from sending mail "from" it? DMARC, looked up once.

A group relays a member's message to every member. Sent from our servers with the
author's ``From:``, it would fail DMARC for a domain whose policy is ``quarantine`` or
``reject`` (their SPF and DKIM do not cover us), and the providers would bin it. So such
a post goes out ``From: "Name via Group" <group address>`` with the author in
``Reply-To``; everyone else's ``From:`` is left alone.

:class:`DmarcPolicies` looks up ``_dmarc.<domain>`` (and the organisational domain's, as
RFC 7489 section 6.6.3 falls back to), caches answers for an hour, and bounds each lookup
by ``DMARC_TIMEOUT``. The lookup itself is injectable (``resolve``), so tests run offline.
A lookup that fails or times out counts as "rewrite": the safe side.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

REWRITE_POLICIES = ("quarantine", "reject")
CACHE_SECONDS = 3600
_CACHE_MAX = 10_000


class LookupFailed(Exception):
    """The DNS could not say (timeout, server failure)."""


def dns_txt(timeout: float) -> Callable[[str], list[str]]:
    """A resolver of TXT records through dnspython: [] when the name has none."""

    def resolve(name: str) -> list[str]:
        import dns.exception  # dnspython costs ~0.2 s to import: only processes that look up pay
        import dns.resolver

        try:
            answer = dns.resolver.resolve(name, "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as err:
            raise LookupFailed(str(err)) from None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return resolve


def parse_policy(records: list[str]) -> str | None:
    """The ``p=`` of the one DMARC record among ``records`` (None: no valid record)."""
    found = [r for r in records if r.strip().lower().startswith("v=dmarc1")]
    if len(found) != 1:
        return None  # none, or several: RFC 7489 says apply no policy
    m = re.search(r"(?:^|;)\s*p\s*=\s*([a-z]+)", found[0], re.I)
    return m.group(1).lower() if m else None


def organisational(domain: str) -> str:
    """A cheap organisational domain: the last two labels, or three under a two-letter
    country code with a short second level (``nhs.uk``, ``co.uk``, ``org.uk``)."""
    labels = domain.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


class DmarcPolicies:
    """Decides whether a post from an author domain needs its From rewritten."""

    def __init__(
        self,
        always: tuple[str, ...] = (),
        resolve: Callable[[str], list[str]] | None = None,
        *,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.always = frozenset(d.lower() for d in always)
        self.resolve = resolve or dns_txt(timeout)
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def policy(self, domain: str) -> str | None:
        """The DMARC policy that applies to ``domain`` (its own record, else its
        organisational domain's ``sp=``-less ``p=``), or None. Raises :class:`LookupFailed`."""
        domain = domain.strip().lower().rstrip(".")
        now = self.clock()
        with self._lock:
            hit = self._cache.get(domain)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = parse_policy(self.resolve(f"_dmarc.{domain}"))
        org = organisational(domain)
        if found is None and org != domain:
            found = parse_policy(self.resolve(f"_dmarc.{org}"))
        with self._lock:
            if len(self._cache) > _CACHE_MAX:
                self._cache.clear()
            self._cache[domain] = (now + CACHE_SECONDS, found)
        return found

    def rewrite(self, author: str) -> tuple[bool, str]:
        """(rewrite From?, why) for a post whose ``From:`` is ``author``."""
        local, at, domain = author.rpartition("@")
        domain = domain.strip().lower().rstrip(".")
        if not at or not local or not domain:
            return True, "no author domain"
        if domain in self.always or organisational(domain) in self.always:
            return True, f"{domain} is on the rewrite list"
        try:
            policy = self.policy(domain)
        except LookupFailed as err:
            return True, f"DMARC lookup failed ({err})"
        except Exception as err:  # a resolver's own trouble: the safe side, never a lost post
            return True, f"DMARC lookup failed ({type(err).__name__})"
        if policy in REWRITE_POLICIES:
            return True, f"{domain} publishes p={policy}"
        return False, f"{domain} publishes p={policy or 'none'}"
