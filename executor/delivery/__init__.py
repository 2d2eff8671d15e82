"""Results where people are: sinks (webhook, Slack, PagerDuty, Markdown files), the durable
outbox that delivers to them, and the scheduled coverage report."""

from casebook.executor.delivery.dispatcher import Dispatcher
from casebook.executor.delivery.outbox import Backoff, Outbox, outbox_path_for

__all__ = ["Backoff", "Dispatcher", "Outbox", "outbox_path_for"]
