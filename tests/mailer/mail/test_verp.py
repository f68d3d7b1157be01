"""Return paths (mailer/mail/verp.py): what a bounce's envelope recipient names, and that
nobody can forge one."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from mailer.mail.verp import ADDRESS, DELIVERY, NOTICE, SUBSCRIBER, ReturnPaths


def test_return_paths_name_their_message_and_refuse_forgeries(settings):
    paths = ReturnPaths.from_settings(settings)
    made = {DELIVERY: paths.address(41), SUBSCRIBER: paths.subscriber(7), NOTICE: paths.notice(3)}
    for kind, address in made.items():
        target = paths.target(address.upper())  # mail systems may change the case
        assert target is not None and target.kind == kind, address
    assert paths.delivery_id(made[DELIVERY]) == 41
    forged = made[DELIVERY].replace("+41-", "+42-")  # someone else's delivery, same signature
    assert paths.target(forged) is None
    assert paths.target(f"<{made[SUBSCRIBER]}>").id == 7
    bound = paths.target(paths.recipient("Editor@Campaign.example"))
    assert bound.kind == ADDRESS and paths.covers(bound, "editor@campaign.example")
    assert not paths.covers(bound, "victim@nhs.example")


def test_bounces_of_mail_sent_before_a_key_rotation_still_match(settings):
    """SECRET_KEY rotated, the old one kept in SECRET_KEY_FALLBACKS: the bounces of last
    month's digest still name their deliveries; once the fallback is dropped they do not."""
    before = ReturnPaths.from_settings(settings)
    sent = before.address(5)
    sent_to_editor = before.recipient("editor@campaign.example")
    rotated = replace(settings, secret_key="a-new-key-" + "x" * 40, secret_key_fallbacks=(settings.secret_key,))
    after = ReturnPaths.from_settings(rotated)
    assert after.address(5) != sent  # new mail is signed with the new key
    assert after.delivery_id(sent) == 5
    assert after.covers(after.target(sent_to_editor), "editor@campaign.example")
    dropped = ReturnPaths.from_settings(replace(rotated, secret_key_fallbacks=()))
    assert dropped.target(sent) is None


def test_return_paths_keep_their_signature_so_bounces_of_sent_mail_still_match(settings):
    key = hashlib.sha256(b"verp:" + settings.secret_key.encode()).digest()
    signature = hmac.new(key, b"41", hashlib.sha256).hexdigest()[:8]
    assert ReturnPaths.from_settings(settings).address(41).endswith(f"41-{signature}@{settings.sender_domain}")
