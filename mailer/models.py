"""Every model, imported in one place so metadata is complete for Alembic and tests."""

from mailer.content.models import ApiToken, Item, ItemEvent, Partner, RejectionReason, Topic, item_topics  # noqa: F401
from mailer.db import Base  # noqa: F401
from mailer.delivery.control_models import SendEvent  # noqa: F401
from mailer.delivery.models import Delivery  # noqa: F401
from mailer.delivery.suppression import Bounce  # noqa: F401
from mailer.digest.models import Edition  # noqa: F401
from mailer.groups.models import (  # noqa: F401
    Group,
    GroupAttachment,
    GroupConsentEvent,
    GroupDelivery,
    GroupMember,
    GroupPost,
    GroupSender,
)
from mailer.inbound.models import InboundMessage  # noqa: F401
from mailer.schedule_runs import ScheduleRun  # noqa: F401
from mailer.staff.models import AuditEntry, Claim, RecoveryCode, StaffUser  # noqa: F401
from subscribers.models import ConsentEvent, ImportJob, Subscriber, Suppression  # noqa: F401
