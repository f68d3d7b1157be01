"""The MIME builder: headers every email must carry, encodings, and refusal of injection."""
from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from mailer.delivery.message import HeaderInjection, MessageTemplate


def _template(**kw):
    return MessageTemplate(mail_from="End Racism This Generation <digest@ertg.example.org>",
                           subject=kw.pop("subject", "Your campaign digest - December 2026"),
                           list_id="digest.ertg.example.org", list_name="Campaign digest",
                           list_unsubscribe_mailto="unsubscribe@ertg.example.org", **kw)


def test_digest_headers_and_parts():
    long_url = "https://digest.example.org/u/" + "A" * 120
    env = _template().build(to_name="Amina Rahman", to_address="amina@example.org",
                            text="Hello\n" + "word " * 40, html="<p>Hello</p>", unsubscribe_url=long_url)
    raw = env.data.decode("ascii")
    # One unfolded line, so one-click clients read the URL intact.
    assert f"List-Unsubscribe: <{long_url}>, <mailto:unsubscribe@ertg.example.org?subject=unsubscribe>\r\n" in raw
    msg = message_from_bytes(env.data, policy=policy.default)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Campaign digest <digest.ertg.example.org>"
    assert msg["Message-ID"].endswith("@ertg.example.org>") and msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert plain.get_content().replace("\r\n", "\n").startswith("Hello\nword word")
    assert max(len(line) for line in raw.split("\r\n") if not line.startswith("List-Unsubscribe:")) <= 998


def test_non_ascii_subject_and_name_are_rfc2047_encoded():
    env = _template(subject="Digest – Rhagfyr / دسمبر").build(
        to_name="Zoë Ahmed", to_address="zoe@exämple.org", text="t", html="<p>t</p>")
    head = env.data.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")  # headers stay 7-bit
    msg = message_from_bytes(env.data, policy=policy.default)
    assert msg["Subject"] == "Digest – Rhagfyr / دسمبر"
    assert msg["To"].addresses[0].display_name == "Zoë Ahmed"
    assert msg["To"].addresses[0].domain == "xn--exmple-cua.org"


@pytest.mark.parametrize("name", ["Eve\r\nBcc: x@example.com", "Eve\nBcc: x@example.com"])
def test_line_breaks_in_header_values_are_refused(name):
    with pytest.raises(HeaderInjection):
        _template().build(to_name=name, to_address="eve@example.org", text="t", html="t")
    with pytest.raises(HeaderInjection):
        _template(subject=f"Hi {name}")
