"""Delivery settings: batching, retries, rate limits, the circuit breaker, VERP and DKIM.

Read from the same environment as :class:`mailer.settings.Settings` (which holds one of
these as ``settings.delivery``), so web, workers and scheduler agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class DeliveryConfigError(ValueError):
    """A delivery setting that cannot work."""


def _number(e: Mapping[str, str], name: str, default, kind=float, minimum=0):
    raw = e.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise DeliveryConfigError(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise DeliveryConfigError(f"{name} must be at least {minimum}")
    return value


def _domain_rates(raw: str) -> dict[str, float]:
    """``"nhs.net=50,example.org=5"`` -> ``{"nhs.net": 50.0, "example.org": 5.0}``."""
    rates = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        domain, sep, value = part.partition("=")
        try:
            rates[domain.strip().lower()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not domain.strip():
            raise DeliveryConfigError(f"SEND_RATE_DOMAINS entry {part!r} is not DOMAIN=RATE")
    return rates


@dataclass(frozen=True)
class DeliveryConfig:
    batch_size: int = 400  # deliveries per queue message (one SMTP connection each)
    # deliveries claimed together inside a batch (each outcome recorded at once); a chunk
    # costs a claim and the readers' rows, a few queries: at 200 they were a fifth of the
    # send path's CPU, at 400 (the whole batch) a tenth (bench.send: 0.36-0.37 -> 0.33-0.34
    # ms a message). The breaker stops a chunk early, so size bounds no failure run.
    chunk_size: int = 400
    max_attempts: int = 8  # transient failures before a delivery is given up as failed
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    breaker_failures: int = 50  # consecutive failures that pause an edition
    lease_seconds: float = 30.0  # a claim whose heartbeat is older than this belongs to a dead worker
    watch_seconds: float = 10.0  # how often each worker sweeps for dead claims and lost queue messages
    rate: float | None = None  # messages per second, all workers together
    domain_rate: float | None = None  # per recipient domain, unless listed in domain_rates
    domain_rates: dict[str, float] = field(default_factory=dict)
    bounce_local: str = "bounces"  # VERP: bounces+<delivery>-<sig>@<bounce_domain>
    bounce_domain: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key: bytes | None = None

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker refreshes the heartbeat of its claims: four beats a lease."""
        return self.lease_seconds / 4

    @classmethod
    def from_env(cls, e: Mapping[str, str]) -> DeliveryConfig:
        key = None
        key_file = e.get("DKIM_PRIVATE_KEY_FILE")
        if key_file:
            try:
                with open(key_file, "rb") as fh:
                    key = fh.read()
            except OSError as exc:
                raise DeliveryConfigError(f"cannot read DKIM_PRIVATE_KEY_FILE: {exc}") from None
            if not e.get("DKIM_SELECTOR"):
                raise DeliveryConfigError("DKIM_SELECTOR is needed with DKIM_PRIVATE_KEY_FILE")
        return cls(
            batch_size=_number(e, "SEND_BATCH_SIZE", 400, int, 1),
            chunk_size=_number(e, "SEND_CHUNK_SIZE", 400, int, 1),
            max_attempts=_number(e, "SEND_MAX_ATTEMPTS", 8, int, 1),
            retry_base_seconds=_number(e, "SEND_RETRY_SECONDS", 30.0),
            retry_max_seconds=_number(e, "SEND_RETRY_MAX_SECONDS", 3600.0),
            breaker_failures=_number(e, "SEND_BREAKER_FAILURES", 50, int, 1),
            lease_seconds=_number(e, "SEND_LEASE_SECONDS", 30.0, float, 1),
            watch_seconds=_number(e, "SEND_WATCH_SECONDS", 10.0, float, 0.1),
            rate=_number(e, "SEND_RATE", None),
            domain_rate=_number(e, "SEND_RATE_PER_DOMAIN", None),
            domain_rates=_domain_rates(e.get("SEND_RATE_DOMAINS", "")),
            bounce_local=e.get("BOUNCE_LOCAL_PART", "bounces"),
            bounce_domain=e.get("BOUNCE_DOMAIN") or None,
            dkim_selector=e.get("DKIM_SELECTOR") or None,
            dkim_domain=e.get("DKIM_DOMAIN") or None,
            dkim_key=key,
        )

    def rate_for(self, domain: str) -> float | None:
        return self.domain_rates.get(domain, self.domain_rate)
