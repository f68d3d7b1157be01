"""Groups: mailing lists where staff networks, practices and coalitions talk to each other.

A group has an address (``slug@`` the list domain), members who joined by double opt-in or
were added by an owner with a recorded basis, a posting policy and moderators. Mail to the
address arrives through the LMTP receiver (``mailer.inbound``), is stored before the 250,
then runs through the moderation chain (:mod:`.chain`, a fixed order); accepted posts go
to every member who takes every message, one copy each, through the group delivery ledger
(:mod:`.sending`).

Modules:

* :mod:`.models`: every table (groups, members, their consent ledger, sender rules, posts,
  the delivery ledger);
* :mod:`.directory`: create, change, find and list groups; their addresses and reserved names;
* :mod:`.service`: memberships: join (double opt-in), add and remove, leave, delivery mode;
* :mod:`.chain`: the moderation chain, one small function per rule;
* :mod:`.posting`: receive a message for a group, hold, approve, reject, discard, expire;
* :mod:`.copies`: one member's copy of a post (list headers, DMARC From rewrite);
* :mod:`.dmarc`: the author domain's DMARC policy (cached, with a timeout, injectable);
* :mod:`.sending`: fan-out to members (posts and daily digests) and sending through the
  one send path;
* :mod:`.daily`: the daily digest: the day's threads, rendered once per group and day;
* :mod:`.network`: the threads groups share with the monthly digest;
* :mod:`.notices`: confirmation, "held for a moderator", rejection and expiry emails;
* :mod:`.links`: every URL in group emails (``List-Archive`` and ``Archived-At`` name the
  archive's pages; each copy's footer carries the member's own way in to the web pages);
* :mod:`.threads`: which thread a post belongs to (``GroupPost.thread_id``, its root's id);
* :mod:`.archive`: who may read a group's archive, filing approved posts, threads, search;
* :mod:`.bodies`: what the archive keeps of a hostile message (text, masked addresses,
  quotes apart, attachments with safe names);
* :mod:`.search`: full-text search (PostgreSQL full-text search, SQLite FTS5);
* :mod:`.removal`: a moderator's removal of a post, and erasing a person in every group;
* :mod:`.webposts`: a member's web form as an RFC 5322 message for the one receive path.

Members choosing the daily digest (``GroupMember.delivery == "digest"``) get one email a
day (:mod:`.daily`) instead of copies from :mod:`.sending`; web-only members get no post
email at all.

Domain code: no flask, dramatiq or click; functions take a ``session`` and never commit.
"""
