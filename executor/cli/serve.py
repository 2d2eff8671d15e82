"""`casebook serve`: receive Alertmanager and Grafana webhooks and investigate every alert."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported
from casebook.executor.cli.investigate import (
    DbOption,
    LocalOption,
    PackOption,
    RayOption,
    TelemetryOption,
)


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    telemetry: TelemetryOption,
    db: DbOption = Path(".casebook/results.duckdb"),
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; other machines can reach "
            "the service only if this is not 127.0.0.1."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9095,
    local: LocalOption = False,
    pack: PackOption = None,
    ray_address: RayOption = None,
    concurrency: Annotated[int | None, typer.Option(
        min=1, max=64, help="Investigations in flight at once (default: one per CPU of the "
                            "machine or Ray cluster, at most 8).")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CASEBOOK_TOKEN",
            show_default=False,
            help="Require `Authorization: Bearer TOKEN` (better set through CASEBOOK_TOKEN).",
        ),
    ] = None,
    grafana_secret: Annotated[
        str | None,
        typer.Option(
            envvar="CASEBOOK_GRAFANA_SECRET",
            show_default=False,
            help="Check the HMAC signature Grafana puts on webhooks signed with this secret.",
        ),
    ] = None,
    grafana_signature_header: Annotated[
        str, typer.Option(help="Header holding Grafana's signature.")
    ] = "X-Grafana-Alerting-Signature",
    grafana_timestamp_header: Annotated[
        str | None,
        typer.Option(
            help="Header holding the timestamp Grafana signs with, if its contact point sets one."
        ),
    ] = None,
    queue: Annotated[
        Path | None,
        typer.Option(
            help="Queue file (SQLite); defaults to RESULTS.queue.db next to --db.",
            show_default=False,
        ),
    ] = None,
    queue_size: Annotated[
        int,
        typer.Option(
            min=1, help="Alerts that may wait; beyond it webhooks get 503 and are retried."
        ),
    ] = 10_000,
    cooldown: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds within which an alert that fires again is noted on its earlier "
            "investigation instead of investigated anew (0: never).",
        ),
    ] = 600.0,
    deadline: Annotated[
        float, typer.Option(min=1, help="Seconds after which a report is made from what finished.")
    ] = 300.0,
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request body accepted.")
    ] = 4 * 1024 * 1024,
    retention_days: Annotated[
        float, typer.Option(min=1, help="Days finished queue rows are kept for deduplication.")
    ] = 30.0,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug.")
    ] = "info",
) -> None:
    """Receive Alertmanager and Grafana webhooks, investigate each alert, serve the reports."""
    import logging
    import signal
    import sys

    with reported():
        from casebook.executor.intake.app import create_app
        from casebook.executor.intake.config import IntakeConfig
        from casebook.executor.intake.service import IntakeService

        config = IntakeConfig(
            telemetry=telemetry,
            db=db,
            queue=queue,
            host=host,
            port=port,
            local=local,
            ray_address=ray_address,
            packs=pack or [],
            token=token or None,
            grafana_secret=grafana_secret or None,
            grafana_signature_header=grafana_signature_header,
            grafana_timestamp_header=grafana_timestamp_header,
            queue_capacity=queue_size,
            cooldown_s=cooldown,
            deadline_s=deadline,
            max_body_bytes=max_body_bytes,
            retention_days=retention_days,
            concurrency=concurrency,
        )
        _log_to_stderr(log_level)
        service = IntakeService.open(config)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    print(
        f"casebook serve: http://{shown}:{port}/ · telemetry {config.telemetry} · results "
        f"{config.db} · queue {config.queue_path}",
        file=sys.stderr,
        flush=True,
    )
    if not config.loopback and not config.token:
        print(
            f"warning: listening on {host} without --token: anyone who can reach port {port} "
            "can queue alerts and read reports",
            file=sys.stderr,
            flush=True,
        )
    try:
        uvicorn.run(
            create_app(service),
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=log_level.lower() == "debug",
        )
    except SystemExit as stop:
        # After its graceful shutdown uvicorn hands the signal on; Ray's handler turns it into
        # exit(15). A stop asked for with SIGTERM is a clean exit.
        if stop.code != signal.SIGTERM:
            raise
    logging.shutdown()


def _log_to_stderr(level: str) -> None:
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     casebook: %(message)s"))
    logger = logging.getLogger("casebook")
    logger.addHandler(handler)
    logger.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
