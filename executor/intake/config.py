"""What `casebook serve` is told: where things are, what is allowed, and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from casebook.executor.config.schema import CasebookFile

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9095
DEFAULT_QUEUE_CAPACITY = 10_000
DEFAULT_COOLDOWN_S = 600.0
DEFAULT_DEADLINE_S = 300.0
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_RETENTION_DAYS = 30.0
GRAFANA_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def queue_path_for(db: str | Path) -> Path:
    """The queue file that sits next to a results database: results.duckdb -> results.queue.db."""
    db = Path(db)
    return db.with_name(f"{db.stem}.queue.db")


@dataclass
class IntakeConfig:
    """Everything the service needs; the CLI fills it from flags and environment variables."""

    telemetry: Path | str  # a path, or an s3:// URL
    db: Path
    queue: Path | None = None  # next to the results database unless given
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    local: bool = False
    ray_address: str | None = None
    packs: list[str] = field(default_factory=list)
    token: str | None = None
    grafana_secret: str | None = None
    grafana_signature_header: str = GRAFANA_SIGNATURE_HEADER
    grafana_timestamp_header: str | None = None
    grafana_max_skew_s: float = 300.0
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    cooldown_s: float = DEFAULT_COOLDOWN_S
    deadline_s: float = DEFAULT_DEADLINE_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    retention_days: float = DEFAULT_RETENTION_DAYS
    # Remote-write series name their service with the first of these labels they carry.
    service_labels: tuple[str, ...] = ("service", "job")
    sources: list = field(default_factory=list)  # PrometheusSource, pulled at alert time
    # The configuration file's sections serve has no flags for: sinks, routes, links, the
    # coverage schedule, delivery retries, sources. None: no file, nothing is delivered.
    settings: CasebookFile | None = None
    public_url: str | None = None  # how people reach the service; links in messages use it
    concurrency: int | None = None  # investigations at once; default one per CPU

    def __post_init__(self) -> None:
        if "://" not in str(self.telemetry):  # an s3:// URL stays text; Path would mangle it
            self.telemetry = Path(self.telemetry)
        self.db = Path(self.db)
        self.queue = Path(self.queue) if self.queue is not None else queue_path_for(self.db)

    @property
    def queue_path(self) -> Path:
        assert self.queue is not None
        return self.queue

    @property
    def base_url(self) -> str:
        """The service's address as people reach it (for links in delivered messages)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the service."""
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")
