"""Who may do what in the console: the one list of roles and their permissions.

Every console view names the permission it needs (``require(...)`` in
:mod:`mailer.web.console.access`); tests walk this table role by role.
"""

from __future__ import annotations

# Permission names, one per kind of screen or action.
DASHBOARD = "dashboard.view"
ITEMS_MODERATE = "items.moderate"  # partner items and held group posts: claim, decide
PARTNERS_MANAGE = "partners.manage"  # partners, their links, tokens and topics
EDITIONS_EDIT = "editions.edit"  # build and edit editions, preview, test-send
EDITIONS_APPROVE = "editions.approve"  # approve another person's edition
EDITIONS_SEND = "editions.send"  # schedule, send, pause, resume, cancel
SUBSCRIBERS_MANAGE = "subscribers.manage"  # search, suppress, erase, import, export
AUDIT_VIEW = "audit.view"
GROUPS_VIEW = "groups.view"  # the group screens, read-only
GROUPS_MANAGE = "groups.manage"  # create and edit groups, their members and sender rules
STAFF_MANAGE = "staff.manage"  # accounts, roles, password and 2FA resets
SETTINGS_VIEW = "settings.view"
GROUPS_MODERATE = "groups.moderate"  # read every group's archive, remove posts from it

ALL_PERMISSIONS = frozenset(
    {
        DASHBOARD,
        ITEMS_MODERATE,
        PARTNERS_MANAGE,
        EDITIONS_EDIT,
        EDITIONS_APPROVE,
        EDITIONS_SEND,
        SUBSCRIBERS_MANAGE,
        AUDIT_VIEW,
        GROUPS_VIEW,
        GROUPS_MANAGE,
        STAFF_MANAGE,
        SETTINGS_VIEW,
        GROUPS_MODERATE,
    }
)

ADMIN, EDITOR, MODERATOR, VIEWER = "admin", "editor", "moderator", "viewer"

# admin: everything. editor: content, editions and subscribers, and may schedule and send.
# moderator: partner items, held group posts and partners, group archives; reads the group
# screens; never sends. viewer: the read-only dashboard and group screens.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN: ALL_PERMISSIONS,
    EDITOR: frozenset(
        {
            DASHBOARD,
            ITEMS_MODERATE,
            EDITIONS_EDIT,
            EDITIONS_APPROVE,
            EDITIONS_SEND,
            SUBSCRIBERS_MANAGE,
            GROUPS_VIEW,
            GROUPS_MANAGE,
            GROUPS_MODERATE,
        }
    ),
    MODERATOR: frozenset({DASHBOARD, ITEMS_MODERATE, PARTNERS_MANAGE, GROUPS_VIEW, GROUPS_MODERATE}),
    VIEWER: frozenset({DASHBOARD, GROUPS_VIEW}),
}
ROLES = tuple(ROLE_PERMISSIONS)


def allows(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission``. An unknown role or permission allows nothing."""
    if permission not in ALL_PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")  # a typo in a view must not pass silently
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def needs_two_factor(role: str) -> bool:
    """Roles that can send (or grant themselves anything) must enrol TOTP before using the
    console."""
    return allows(role, EDITIONS_SEND) or allows(role, STAFF_MANAGE)
