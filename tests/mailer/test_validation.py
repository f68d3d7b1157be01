"""mailer.validation: the one email-address check every form, the API and the importer use."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from mailer.validation import InvalidInput, _plain_address, email_address

# Plain addresses (the importer's common case) and every kind of edge the library treats
# specially: role mailboxes it lower-cases, Punycode and "ab--" labels, special-use
# domains, numeric or hyphenated top-level domains, limits of label, domain and address
# length, quoting, display names, IP literals and Unicode.
ADDRESSES = [
    "priya@example.org",
    "Priya.Shah@Riverside.Example.ORG",
    "a@b.co",
    "x@y.z1a",
    "first.last+tag@sub.domain.example.com",
    "o'brien@example.ie",
    "user_name@example.org",
    "#!$%&'*+-/=?^_`{|}~@example.org",
    "a.b.c.d@e-f.g-h.example",
    "123@456.example",
    "Postmaster@Example.org",
    "ABUSE@example.org",
    "info@example.org",
    "Info.Desk@example.org",
    "news@x.org",
    "www@x.org",
    "wwwx@x.org",
    "a@xn--bcher-kva.example",
    "a@XN--BCHER-KVA.example",
    "a@ab--cd.example",
    "a@a-b--c.example",
    "a@ab-cd.example",
    "a@xn--.example",
    "a@b.xn--p1ai",
    "a@b.c--d",
    "a@localhost",
    "a@mail.localhost",
    "a@host.local",
    "a@x.invalid",
    "a@x.test",
    "a@test",
    "a@x.onion",
    "a@10.in-addr.arpa",
    "a@example",
    "a@example.com.",
    "a@.example.com",
    "a@example..com",
    "a@-example.com",
    "a@example-.com",
    "a@example.-com",
    "a@example.c-",
    "a@example.123",
    "a@example.1a",
    "a@1.2.3.4",
    "a@[192.0.2.1]",
    "a@[IPv6:2001:db8::1]",
    ".a@example.org",
    "a.@example.org",
    "a..b@example.org",
    "@example.org",
    "a@",
    "a",
    "",
    "a@@example.org",
    "a@b@example.org",
    '"quoted"@example.org',
    '"a b"@example.org',
    "Name <a@example.org>",
    "<a@example.org>",
    "a b@example.org",
    "a\t@example.org",
    "a,b@example.org",
    "a(b)@example.org",
    "a[b]@example.org",
    "a;b@example.org",
    "a@exa_mple.org",
    "a@exa mple.org",
    "a@example.org ",
    " a@example.org",
    "José.Ñúñez@Bücher.example",
    "josé@example.org",
    "a@bücher.example",
    "a@BÜCHER.example",
    "用户@例子.广告",
    "a@例子.广告",
    "ñ@xn--bcher-kva.example",
    "a\u0301@example.org",
    "a@exam\u200bple.org",
    "a@ｅxample.org",
    "a＠example.org",
    "a@example。org",
    "a@" + "b" * 63 + ".example",
    "a@" + "b" * 64 + ".example",
    "a@" + ".".join(["c" * 62] * 4) + ".org",
    "a@" + ".".join(["c" * 60] * 4) + ".org",
    "l" * 64 + "@example.org",
    "l" * 65 + "@example.org",
    "l" * 200 + "@example.org",
    "l" * 242 + "@example.org",
    "l" * 243 + "@example.org",
    "l" * 241 + "@example.org",
    "a@b." + "c" * 63,
    "a@b." + "c" * 64,
    "a@B.C",
    "A@B.CoM",
]


def _random_addresses(n: int, seed: int = 10) -> list[str]:
    """Address-shaped strings: mostly well-formed words, with an odd character, dot,
    hyphen, case, length or top-level domain mixed in, so both answers come up often."""
    rnd = random.Random(seed)
    odd = "._+-'!~\"( é@ÄxX9-"
    tlds = ["org", "COM", "uk", "Co"] * 4 + ["test", "local", "c0m", "x-y", "1", "xn--p1ai", "arpa", "", "localhost"]

    def word(chars: str, hi: int) -> str:
        w = "".join(rnd.choice(chars) for _ in range(rnd.randint(1, hi) if rnd.random() < 0.95 else 0))
        if rnd.random() < 0.1:
            i = rnd.randint(0, len(w))
            w = w[:i] + rnd.choice(odd) + w[i:]
        return w

    out = []
    for _ in range(n):
        local = ".".join(word("abcdeXYZ0189_+-", 7) for _ in range(rnd.randint(1, 3)))
        if rnd.random() < 0.05:
            local = rnd.choice(["info", "Postmaster", "news", "NOC"])
        domain = ".".join(word("abcdefXYZ09-", 9) for _ in range(rnd.randint(1, 3)))
        out.append(f"{local}{rnd.choice(['@'] * 8 + ['', '@@'])}{domain}.{rnd.choice(tlds)}")
    return out


def _library(address: str) -> str | Exception:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as err:
        return err


@pytest.mark.parametrize("address", ADDRESSES)
def test_the_fast_path_agrees_with_email_validator(address):
    expected = _library(address)
    fast = _plain_address(address.strip())
    if fast is not None:
        assert fast == expected
    if isinstance(expected, Exception):
        with pytest.raises(InvalidInput) as err:
            email_address("email", address)
        assert err.value.message == f"is not a valid email address ({expected})."
    else:
        assert email_address("email", address) == expected


def test_the_fast_path_agrees_over_thousands_of_near_addresses():
    addresses = _random_addresses(4000)
    valid = fast_hits = 0
    for address in addresses:
        expected = _library(address)
        valid += not isinstance(expected, Exception)
        fast = _plain_address(address.strip())
        fast_hits += fast is not None
        assert fast is None or fast == expected, address
        if isinstance(expected, Exception):
            with pytest.raises(InvalidInput):
                email_address("email", address)
        else:
            assert email_address("email", address) == expected, address
    # Not all rubbish, nor all plain: both answers and both ways really were compared.
    assert 1000 < valid < 3000 and fast_hits > 800, (valid, fast_hits)


def test_plain_addresses_take_the_fast_path():
    # The importer's common case must not fall through to the slow parse.
    for address in (
        "priya@example.org",
        "Priya.Shah@Riverside.Example.ORG",
        "first.last+tag@sub.domain.example.com",
        "o'brien@example.ie",
    ):
        assert _plain_address(address) == validate_email(address, check_deliverability=False).normalized


def test_one_message_style_and_line_breaks_anywhere_are_refused():
    with pytest.raises(InvalidInput) as err:
        email_address("contact_email", "not-an-address")
    assert (err.value.field, err.value.message) == (
        "contact_email",
        "is not a valid email address (An email address must have an @-sign.).",
    )
    for value in ("eve@example.org\r\nBcc: x@example.org", "eve@example.org\n", "\reve@example.org"):
        with pytest.raises(InvalidInput) as err:
            email_address("email", value)
        assert err.value.message == "must not contain line breaks."


def test_an_empty_value_is_none_only_when_optional():
    assert email_address("contact_email", "  ", required=False) is None
    assert email_address("contact_email", None, required=False) is None
    with pytest.raises(InvalidInput):
        email_address("email", "")
    with pytest.raises(InvalidInput):
        email_address("email", None)
