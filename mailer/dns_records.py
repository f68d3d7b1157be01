"""The DNS records a sending domain publishes so receivers trust its mail.

- **SPF** (RFC 7208) on the return-path (bounce) domain: which hosts may send mail whose
  envelope sender is ``bounces+...@<bounce domain>``. Receivers check SPF against that
  domain, not the From header's; one SPF record per domain name.
- **DKIM** (RFC 6376) at ``<selector>._domainkey.<signing domain>``: the public key of
  ``DKIM_PRIVATE_KEY_FILE`` (:mod:`mailer.mail.dkim_key`), so signatures verify.
- **DMARC** (RFC 7489) at ``_dmarc.<From domain>``: what receivers do with mail that passes
  neither aligned SPF nor aligned DKIM, and where they send reports.
- **MX** for the bounce domain when it differs from the sender's: bounces must reach the
  mailbox that ``mailer bounces process`` reads.

Plain values in, :class:`Record` lists out: no settings object, no DNS lookups.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from mailer.config_checks import aligned
from mailer.mail.dkim_key import public_key

_HOST = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
DMARC_POLICIES = ("none", "quarantine", "reject")


class RecordError(ValueError):
    """An input that cannot go into a record (a malformed SPF mechanism or host name)."""


@dataclass(frozen=True)
class Record:
    name: str  # a full domain name, without the final dot
    type: str  # "TXT" or "MX"
    value: str  # a TXT record's whole text, unquoted; an MX's "PREFERENCE HOST"
    why: str  # one line for the operator

    def zone_line(self) -> str:
        """``name TYPE value``; a TXT text as quoted strings of at most 255 characters
        (one DNS character-string each), which resolvers join back into one."""
        if self.type != "TXT":
            return f"{self.name}  {self.type}  {self.value}"
        chunks = [self.value[i : i + 255] for i in range(0, len(self.value), 255)]
        return f"{self.name}  TXT  " + " ".join(f'"{c}"' for c in chunks)


def host_name(value: str) -> str:
    """``value`` as a lower-case host name without a final dot, or :class:`RecordError`."""
    host = value.strip().rstrip(".").lower()
    if not _HOST.match(host):
        raise RecordError(f"{value!r} is not a host name")
    return host


def spf_mechanism(value: str) -> str:
    """One checked SPF mechanism: ``ip4:ADDR[/N]``, ``ip6:ADDR[/N]``, ``a[:HOST]``,
    ``mx[:HOST]`` or ``include:HOST``; a bare address becomes ``ip4:``/``ip6:``."""
    value = value.strip()
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        pass
    else:
        return f"ip{net.version}:{value}"
    kind, sep, arg = value.partition(":")
    kind = kind.lower()
    if kind in ("ip4", "ip6") and sep:
        try:
            net = ipaddress.ip_network(arg, strict=False)
        except ValueError:
            raise RecordError(f"{value!r}: {arg!r} is not an IP address or network") from None
        if f"ip{net.version}" != kind:
            raise RecordError(f"{value!r}: an IPv{net.version} address needs ip{net.version}:")
        return f"{kind}:{arg}"
    if kind in ("a", "mx") and not sep:
        return kind
    if kind in ("a", "mx", "include") and sep:
        return f"{kind}:{host_name(arg)}"
    raise RecordError(
        f"{value!r} is not an SPF mechanism this command writes (ip4:ADDR, ip6:ADDR, a:HOST, mx:HOST, include:DOMAIN)"
    )


def relay_mechanism(relay_host: str | None) -> str | None:
    """The SPF mechanism naming a relay at ``relay_host`` (an SMTP_URL host), or None when
    that says nothing about the addresses mail leaves from (no relay, or this machine)."""
    if not relay_host or relay_host.lower() == "localhost":
        return None
    try:
        address = ipaddress.ip_address(relay_host)
    except ValueError:
        return f"a:{host_name(relay_host)}"
    if address.is_loopback:
        return None
    return f"ip{address.version}:{address}"


def spf_record(bounce_domain: str, mechanisms: list[str]) -> Record:
    value = "v=spf1 " + " ".join(dict.fromkeys(mechanisms)) + " ~all"
    return Record(
        bounce_domain,
        "TXT",
        value,
        f"SPF: hosts that may send with a return path at {bounce_domain} (one SPF record "
        "per name: if it has one already, add these mechanisms to it)",
    )


def dkim_record(selector: str, domain: str, private_pem: bytes) -> Record:
    key = public_key(private_pem)
    return Record(
        f"{selector}._domainkey.{domain}",
        "TXT",
        f"v=DKIM1; k=rsa; p={key.base64}",
        f"DKIM: the public half of DKIM_PRIVATE_KEY_FILE ({key.bits}-bit RSA), selector {selector}",
    )


def dmarc_record(sender_domain: str, policy: str = "none", report_to: str | None = None) -> Record:
    if policy not in DMARC_POLICIES:
        raise RecordError(f"DMARC policy must be one of {', '.join(DMARC_POLICIES)}, not {policy!r}")
    value = f"v=DMARC1; p={policy}"
    if report_to:
        value += f"; rua=mailto:{report_to}"
    value += "; adkim=r; aspf=r"
    return Record(
        f"_dmarc.{sender_domain}",
        "TXT",
        value,
        f"DMARC for {sender_domain}: start with p=none and read the reports, then "
        "move to quarantine and reject (keep an existing record's policy if stricter)",
    )


def mx_record(bounce_domain: str, host: str) -> Record:
    return Record(
        bounce_domain,
        "MX",
        f"10 {host_name(host)}.",
        f"MX: bounces to {bounce_domain} reach the mailbox `mailer bounces process` reads",
    )


def sending_records(
    *,
    sender_domain: str,
    bounce_domain: str,
    spf: list[str],
    dkim_selector: str | None = None,
    dkim_domain: str | None = None,
    dkim_key: bytes | None = None,
    dmarc_policy: str = "none",
    dmarc_report: str | None = None,
    mx: str | None = None,
) -> tuple[list[Record], list[str]]:
    """The records to publish, and notes for what no record can say (missing DKIM key, a
    bounce domain without an MX, domains that do not align for DMARC)."""
    records = [spf_record(bounce_domain, spf)]
    notes: list[str] = []
    if dkim_key and dkim_selector:
        records.append(dkim_record(dkim_selector, dkim_domain or sender_domain, dkim_key))
        if not aligned(dkim_domain or sender_domain, sender_domain):
            notes.append(
                f"DKIM signs as {dkim_domain}, which does not align with {sender_domain}: DMARC will not count it"
            )
    else:
        notes.append(
            "no DKIM record: set DKIM_PRIVATE_KEY_FILE and DKIM_SELECTOR (make a key "
            "with: openssl genrsa -out dkim.pem 2048) and run this again"
        )
    records.append(dmarc_record(sender_domain, dmarc_policy, dmarc_report))
    if mx:
        records.append(mx_record(bounce_domain, mx))
    elif bounce_domain != sender_domain:
        notes.append(
            f"{bounce_domain} needs an MX record naming the server that receives its "
            "bounces: run this again with --mx HOST"
        )
    else:
        notes.append(
            f"bounces come back through {bounce_domain}'s own MX: have it hand "
            f"bounces+*@{bounce_domain} to `mailer bounces process`"
        )
    if not aligned(bounce_domain, sender_domain):
        notes.append(
            f"the bounce domain {bounce_domain} does not align with {sender_domain}: "
            "SPF will not count for DMARC, so DKIM must pass"
        )
    return records, notes
