"""DKIM signing cost per message: dkimpy (pure-Python RSA) against ours (OpenSSL).

    python -m bench.dkim [--messages 300] [--bits 2048] [--kb 32]

Makes an RSA key with ``openssl genrsa`` (as an operator would), a multipart digest-like
message of about ``--kb`` KB (different per copy, as personalised copies are), and signs
it with dkimpy's ``dkim.sign`` (relaxed/relaxed, our header list: what the service did
before) and with :class:`mailer.mail.dkim.Signer` (what it does now). Reports the median
of five rounds in CPU milliseconds per message, and checks with dkimpy's verifier that
each of our signatures verifies. The last line::

    dkim dkimpy_ms=... ours_ms=... speedup=...
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path


def message(n: int, kb: int) -> bytes:
    m = EmailMessage(policy=SMTP.clone(max_line_length=998))
    m["From"] = "End Racism This Generation <digest@ertg.example.org>"
    m["To"] = f"Reader {n} <reader{n}@example.org>"
    m["Subject"] = "December digest: clinics, pledges and events"
    m["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    m["Message-ID"] = f"<{n}.digest@ertg.example.org>"
    m["List-Id"] = "Digest <digest.ertg.example.org>"
    m["List-Unsubscribe"] = f"<https://digest.example.org/u/{'t' * 90}{n}>, <mailto:unsubscribe+{n}@ertg.example.org>"
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    para = f"Reader {n}: health equality practice staff network partner community trust surgery. "
    text = "\n".join(para * 3 for _ in range(kb * 1024 // (len(para) * 3) // 3))
    m.set_content(text)
    m.add_alternative(
        f"<html><body>{'<p>' + para * 3 + '</p>' * 1}" * (kb * 1024 // (len(para) * 3) // 2) + "</body></html>",
        subtype="html",
    )
    return m.as_bytes()


def cpu_ms_per_message(fn, messages: list[bytes]) -> float:
    start = time.process_time()
    for m in messages:
        fn(m)
    return 1000 * (time.process_time() - start) / len(messages)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--kb", type=int, default=32)
    args = ap.parse_args(argv)

    import dkim

    from mailer.mail.dkim import SIGNED_HEADERS, Signer
    from mailer.settings.delivery import DeliveryConfig

    with tempfile.TemporaryDirectory() as d:
        key = Path(d) / "dkim.pem"
        subprocess.run(
            ["openssl", "genrsa", "-traditional", "-out", str(key), str(args.bits)], check=True, capture_output=True
        )
        pem = key.read_bytes()
        public = subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
        ).stdout
    record = b"v=DKIM1; k=rsa; p=" + __import__("base64").b64encode(public)
    messages = [message(n, args.kb) for n in range(args.messages)]
    ours = Signer(DeliveryConfig(dkim_selector="bench", dkim_key=pem), "ertg.example.org")

    def theirs(m: bytes) -> bytes:
        return (
            dkim.sign(
                m,
                b"bench",
                b"ertg.example.org",
                pem,
                include_headers=list(SIGNED_HEADERS),
                canonicalize=(b"relaxed", b"relaxed"),
                linesep=b"\r\n",
            )
            + m
        )

    for m in messages[:20]:
        assert dkim.verify(ours(m), dnsfunc=lambda name, timeout=5: record), "our signature does not verify"
    few = messages[: max(20, args.messages // 10)]  # dkimpy is slow: a tenth is enough
    slow = statistics.median(cpu_ms_per_message(theirs, few) for _ in range(5))
    fast = statistics.median(cpu_ms_per_message(ours, messages) for _ in range(5))
    print(
        f"{len(messages[0]) // 1024} KB messages, {args.bits}-bit key, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"dkim dkimpy_ms={slow:.2f} ours_ms={fast:.3f} speedup={slow / fast:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
