"""``mailer dns-records``: the DNS records the sending domain must publish."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from mailer import runtime
from mailer.cli._common import fail


@click.command("dns-records")
@click.option(
    "--spf",
    "spf",
    multiple=True,
    metavar="MECHANISM",
    help="A host or network that sends our mail (ip4:ADDR, ip6:ADDR, a:HOST, "
    "include:DOMAIN); repeat it. Default: the relay in SMTP_URL.",
)
@click.option("--mx", metavar="HOST", help="The server that receives mail for the bounce domain.")
@click.option("--dmarc-policy", type=click.Choice(["none", "quarantine", "reject"]), default="none", show_default=True)
@click.option("--dmarc-report", metavar="ADDRESS", help="Mailbox for DMARC aggregate reports.")
def dns_records(spf: tuple[str, ...], mx: str | None, dmarc_policy: str, dmarc_report: str | None) -> None:
    """Print the SPF, DKIM, DMARC and bounce (MX) records, from MAIL_FROM, BOUNCE_DOMAIN
    and the DKIM settings."""
    # loaded when the command runs, so `mailer --help` stays fast
    from mailer.dns_records import RecordError, relay_mechanism, sending_records, spf_mechanism

    settings = runtime.current().settings
    delivery = settings.delivery
    sender = settings.sender_domain.lower()
    bounce = (delivery.bounce_domain or sender).lower()
    try:
        mechanisms = [spf_mechanism(m) for m in spf]
        if not mechanisms:
            relay = urlsplit(settings.smtp_url).hostname if settings.smtp_url else None
            mechanism = relay_mechanism(relay)
            if mechanism is None:
                fail(
                    "Say which hosts send the mail: --spf ip4:ADDRESS (this machine's public "
                    "address, when the relay runs here) or --spf include:DOMAIN (your mail "
                    "provider's). SMTP_URL names no relay that SPF could use."
                )
            mechanisms = [mechanism]
        if dmarc_report and "@" not in dmarc_report:
            raise RecordError(f"--dmarc-report must be an email address, not {dmarc_report!r}")
        records, notes = sending_records(
            sender_domain=sender,
            bounce_domain=bounce,
            spf=mechanisms,
            dkim_selector=delivery.dkim_selector,
            dkim_domain=delivery.dkim_domain,
            dkim_key=delivery.dkim_key,
            dmarc_policy=dmarc_policy,
            dmarc_report=dmarc_report,
            mx=mx,
        )
    except RecordError as exc:
        fail(str(exc))
    except ValueError as exc:  # the configured DKIM key does not parse
        fail(f"DKIM_PRIVATE_KEY_FILE: {exc}")
    click.echo(f"; DNS records for mail from {sender} (return path {delivery.bounce_local}+...@{bounce}).")
    click.echo(
        "; Names are full domain names. A long TXT value is split into quoted parts of "
        "255 characters;\n; a DNS provider's form takes the parts joined, without quotes."
    )
    for record in records:
        click.echo(f"\n; {record.why}\n{record.zone_line()}")
    for note in notes:
        click.echo(f"\n; note: {note}")
