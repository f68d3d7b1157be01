"""The MIME builder: headers every email must carry, encodings, and refusal of injection."""

from __future__ import annotations

import os
import re
from email import message_from_bytes, message_from_string, policy
from email.header import decode_header, make_header

import pytest

from mailer.mail.message import HeaderInjection, qp_fragment
from tests.factories import message_template


def test_digest_headers_and_parts():
    long_url = "https://digest.example.org/u/" + "A" * 120
    env = message_template().build(
        to_name="Amina Rahman",
        to_address="amina@example.org",
        text="Hello\n" + "word " * 40,
        html="<p>Hello</p>",
        unsubscribe_url=long_url,
    )
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


def test_no_body_line_starts_with_a_dot_and_the_text_reads_the_same():
    """A line starting with "." is doubled by the SMTP client, a copy of the whole message;
    the encoder writes the dot as =2E instead, also where a long line is cut after a dot
    or a line has no room left for the two extra characters."""
    html = (
        "<style>\n.card a { color: #c4b5fd !important; }\n.muted td { color: #d1d5db; }\n</style>\n"
        + "x" * 75
        + ".org/after-the-cut\n"
        + "."
        + "y" * 80
        + "\n"
        + "." * 200
        + "\n.\n"
    )
    text = ".Leading dot\n" + "word " * 15 + ".\n"
    env = message_template().build(to_name=".Amina", to_address="amina@example.org", text=text, html=html)
    lines = env.data.split(b"\r\n")
    assert not [line for line in lines if line.startswith(b".")]
    assert env.dot_free  # so the transport skips its scan for dots
    body = lines[lines.index(b"") :]
    assert max(len(line) for line in body) <= 76  # quoted-printable's limit
    plain, rich = message_from_bytes(env.data, policy=policy.default).iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n") == html


def test_per_reader_fragments_joined_to_shared_ones_start_no_line_with_a_dot():
    """Digests are joined from pieces encoded once per edition and pieces encoded per
    reader (:func:`qp_fragment`); a reader's value that starts with a dot, or has one
    where the encoder cuts a line, never starts a line either."""
    values = [".hidden", "x" * 75 + ".after-the-cut", "." * 160, "caf\u00e9 .dot", "=.", "plain"]
    text = b"".join(qp_fragment("Hello ") + qp_fragment(v) for v in values)
    html = b"".join(qp_fragment("<p>") + qp_fragment(v) + qp_fragment("</p>\n") for v in values)
    env = message_template().build_encoded(
        to_name=".Amina", to_address="amina@example.org", text_qp=[text], html_qp=[html]
    )
    assert env.dot_free
    assert not [line for line in env.data.split(b"\r\n") if line.startswith(b".")]
    plain, rich = message_from_bytes(env.data, policy=policy.default).iter_parts()
    assert plain.get_content() == "".join("Hello " + v for v in values)


def test_non_ascii_subject_and_name_are_rfc2047_encoded():
    env = message_template(subject="Digest – Rhagfyr / دسمبر").build(
        to_name="Zoë Ahmed", to_address="zoe@exämple.org", text="t", html="<p>t</p>"
    )
    head = env.data.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")  # headers stay 7-bit
    msg = message_from_bytes(env.data, policy=policy.default)
    assert msg["Subject"] == "Digest – Rhagfyr / دسمبر"
    assert msg["To"].addresses[0].display_name == "Zoë Ahmed"
    assert msg["To"].addresses[0].domain == "xn--exmple-cua.org"


@pytest.mark.parametrize("name", ["Eve\r\nBcc: x@example.com", "Eve\nBcc: x@example.com"])
def test_line_breaks_in_header_values_are_refused(name):
    with pytest.raises(HeaderInjection):
        message_template().build(to_name=name, to_address="eve@example.org", text="t", html="t")
    with pytest.raises(HeaderInjection):
        message_template(subject=f"Hi {name}")


def test_non_ascii_local_part_with_a_display_name_is_written_as_utf8():
    """Issue 9 finding 4: this raised UnicodeEncodeError in encode_address."""
    env = message_template().build(to_name="عائشہ خان", to_address="عائشہ.خان@exämple.org", text="t", html="t")
    assert env.recipient == "عائشہ.خان@xn--exmple-cua.org" and env.smtputf8
    msg = message_from_string(env.data.decode("utf-8"), policy=policy.default)  # RFC 6532
    (to,) = msg["To"].addresses
    assert (to.display_name, to.username, to.domain) == ("عائشہ خان", "عائشہ.خان", "xn--exmple-cua.org")
    assert not message_template().build(to_name="A", to_address="a@example.org", text="t", html="t").smtputf8


def test_encoded_words_stay_within_75_characters_and_lines_within_78():
    """Issue 9 finding 15: long non-ASCII subjects and names made 76- and 88-character words."""
    subject = "Digest – Rhagfyr / دسمبر / 十二月 — " * 4
    name = "عائشہ خان Zoë Ahmed-Rahman — Equality and Diversity Lead 🌍"
    env = message_template(subject=subject).build(to_name=name, to_address="zoe@example.org", text="t", html="t")
    head = env.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    words = re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", head)
    assert words and max(len(w) for w in words) <= 75
    assert max(len(line) for line in head.split("\r\n") if not line.startswith("Content-Type")) <= 78
    msg = message_from_bytes(env.data, policy=policy.default)
    assert msg["Subject"] == subject
    # The stdlib's address parser puts a space between adjacent encoded-words of a name,
    # against RFC 2047 section 6.2; decode_header follows the RFC, as mail clients do.
    raw_to = re.search(r"\r\nTo: (.*?) <", head, re.S).group(1)
    assert str(make_header(decode_header(raw_to))) == name
    # An ASCII name with specials is quoted, not encoded.
    env = message_template().build(to_name='Ahmed, "Zoe"', to_address="zoe@example.org", text="t", html="t")
    assert b'To: "Ahmed, \\"Zoe\\"" <zoe@example.org>\r\n' in env.data


def test_date_has_a_numeric_zone_and_optional_headers_appear_only_when_asked():
    """Issue 9 finding 15: Date said GMT; Auto-Submitted, Reply-To and Feedback-ID were missing."""
    env = message_template().build(to_name="", to_address="a@example.org", text="t", html="t")
    msg = message_from_bytes(env.data, policy=policy.default)
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", str(msg["Date"]))
    assert msg["Auto-Submitted"] is None and msg["Reply-To"] is None and msg["Feedback-ID"] is None
    env = message_template(
        auto_submitted=True,
        reply_to="Digest editors <editors@ertg.example.org>",
        feedback_id="2026-12:digest:ertg.example.org",
    ).build(to_name="", to_address="a@example.org", text="t", html="t")
    msg = message_from_bytes(env.data, policy=policy.default)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Reply-To"].addresses[0].addr_spec == "editors@ertg.example.org"
    assert msg["Feedback-ID"] == "2026-12:digest:ertg.example.org"


def test_message_ids_differ_between_copies_and_between_forked_workers():
    """Worker processes are forked from one parent: each must still number its own."""
    template = message_template()

    def message_id() -> str:
        env = template.build(to_name="", to_address="a@example.org", text="Hi", html="<p>Hi</p>")
        return message_from_bytes(env.data, policy=policy.default)["Message-ID"]

    here = {message_id() for _ in range(3)}
    assert len(here) == 3
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as a forked worker would, build one message and report its id
        os.write(write, message_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1000).decode()
    os.close(read)
    assert child.endswith("@ertg.example.org>")
    assert child.split(".")[0] not in {m.split(".")[0] for m in here}  # its own prefix
