"""What an editor sees before sending: a copy as a real subscriber or as a set of choices,
test sends to any address, and the signed link to the preview page.

Test sends and "as these choices" previews use a stand-in recipient with id 0, so their
manage, unsubscribe and view links are well-formed but act on nobody: an editor clicking
"Unsubscribe" in a test email must not unsubscribe a real person.

A preview link is a bearer secret until the console brings logins, so it is kept weak:
it lasts a day, previews only by topics and partners (a copy "as subscriber EMAIL" is the
CLI's, where it cannot reveal to a link holder who is subscribed), and every link of an
edition can be revoked at once (:func:`revoke_preview_links`), by the generation number
each link carries.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.content.models import Partner, Topic
from mailer.digest.compose import PreparedEdition, compose, message_template
from mailer.digest.editions import EditionError
from mailer.digest.models import Edition
from mailer.mail.message import Envelope
from mailer.settings import Settings
from mailer.validation import InvalidInput, email_address
from subscribers.models import Subscriber
from subscribers.service import Recipient, recipients
from subscribers.tokens import TokenError, Tokens

PREVIEW_MAX_AGE = 24 * 3600  # preview page links work for a day
STAND_IN_ID = 0


class PreviewError(EditionError):
    """The preview cannot be made as asked; the message says why."""


def as_subscriber(session: Session, email: str) -> Recipient:
    """The confirmed subscriber with ``email``, with their current choices."""
    sub = session.scalar(select(Subscriber).where(Subscriber.email == email_address("email", email)))
    if sub is None:
        raise PreviewError(f"No subscriber has the address {email}.")
    found = recipients(session, [sub.id])
    if not found:
        raise PreviewError(f"{sub.email} is {sub.status}, so gets no digest.")
    return found[0]


def as_choices(session: Session, topic_slugs=(), partner_slugs=(), topic_ids=(), partner_ids=()) -> Recipient:
    """A stand-in recipient who chose these topics and partners (by slug or id)."""
    topics = {t.slug: t.id for t in session.scalars(select(Topic))}
    partners = {p.slug: p.id for p in session.scalars(select(Partner))}
    unknown = [s for s in topic_slugs if s not in topics] + [s for s in partner_slugs if s not in partners]
    unknown += [str(i) for i in topic_ids if i not in topics.values()]
    unknown += [str(i) for i in partner_ids if i not in partners.values()]
    if unknown:
        raise PreviewError(f"Unknown topic or partner: {', '.join(unknown)}.")
    t = frozenset([topics[s] for s in topic_slugs] + list(topic_ids))
    p = frozenset([partners[s] for s in partner_slugs] + list(partner_ids))
    if not t and not p:
        raise PreviewError("Choose at least one topic or partner to preview.")
    return Recipient(STAND_IN_ID, "subscriber@example.invalid", "", 0, t, p)


def profile(session: Session, subscriber: str | None = None, topic_slugs=(), partner_slugs=()) -> Recipient:
    """Who to preview as: the subscriber with that address, or a stand-in with those choices
    (one or the other, not both)."""
    if subscriber and (topic_slugs or partner_slugs):
        raise PreviewError("Preview as --subscriber or as --topic/--partner choices, not both.")
    if subscriber:
        return as_subscriber(session, subscriber)
    return as_choices(session, topic_slugs, partner_slugs)


def make_test_send(
    prepared_edition: PreparedEdition, settings: Settings, recipient: Recipient, to_address: str
) -> Envelope:
    """``recipient``'s copy, addressed to ``to_address``, subject marked as a test.

    Links are re-pointed at the stand-in (id 0) even when previewing a real subscriber.
    """
    try:
        address = email_address("to", to_address)
    except InvalidInput as err:
        raise PreviewError(f"The test address {err.message}") from None
    stand_in = Recipient(STAND_IN_ID, recipient.email, recipient.name, 0, recipient.topic_ids, recipient.partner_ids)
    template = message_template(settings, f"[Test] {prepared_edition.subject}")
    envelope = compose(prepared_edition, stand_in, to_address=address, template=template)
    if envelope is None:
        raise PreviewError("Those choices match no item in this edition: there is nothing to send.")
    return envelope


def _tokens(settings: Settings) -> Tokens:
    return Tokens(settings.secret_key, settings.secret_key_fallbacks)


def preview_token(settings: Settings, edition: Edition) -> str:
    """A token for ``edition``'s preview page, valid for :data:`PREVIEW_MAX_AGE` or until
    the edition's preview links are revoked (every link is distinct, so limits can count
    per link)."""
    return _tokens(settings).make_preview(edition.id, edition.preview_generation)


def revoke_preview_links(edition: Edition) -> None:
    """Make every preview link of ``edition`` issued so far stop working (new ones work)."""
    edition.preview_generation = (edition.preview_generation or 0) + 1


def edition_for_preview(session: Session, settings: Settings, token: str) -> Edition:
    """The edition whose live preview link carries ``token``, or :class:`PreviewError`
    saying whether it is forged, expired or revoked."""
    try:
        claims = _tokens(settings).read_preview(token, PREVIEW_MAX_AGE)
    except TokenError as err:
        if err.kind == "expired":
            raise PreviewError(
                "This preview link has expired; make a new one with `mailer edition preview-link`."
            ) from None
        raise PreviewError("This preview link is not valid.") from None
    edition = session.get(Edition, claims.edition_id)
    if edition is None:
        raise PreviewError("This preview link is not valid: its edition no longer exists.")
    if claims.generation != edition.preview_generation:
        raise PreviewError("This preview link has been revoked; ask for a new one (`mailer edition preview-link`).")
    return edition
