"""Email mechanics, knowing nothing of the campaign's domain.

Templates to HTML and text (:mod:`.rendering`: Jinja2, MJML, CSS inlining), MIME building
(:mod:`.message`), transports (:mod:`.transport`), per-recipient return paths
(:mod:`.verp`), DKIM signing (:mod:`.dkim`) and its DNS record (:mod:`.dkim_key`), and the
one send path that puts them together (:mod:`.outgoing`). Nothing here imports content,
subscribers, digests or deliveries; the domain imports this.
"""
