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
    SourcesOption,
)

OptionalTelemetry = Annotated[
    str | None,
    typer.Option(
        "--telemetry", "-t", envvar="CASEBOOK_TELEMETRY", show_default=False,
        help="Telemetry store: a Parquet directory, a .duckdb file or s3://bucket/prefix (or "
        "`telemetry:` in --config).",
    ),
]
# Flags whose configuration-file value applies unless the flag (or its variable) is given.
FILE_KEYS = {
    "telemetry": lambda f: f.telemetry,
    "db": lambda f: f.results.db,
    "queue": lambda f: f.results.queue,
    "host": lambda f: f.server.host,
    "port": lambda f: f.server.port,
    "public_url": lambda f: f.server.public_url,
    "local": lambda f: f.runtime.local,
    "ray_address": lambda f: f.runtime.ray_address,
    "concurrency": lambda f: f.runtime.concurrency,
    "token": lambda f: f.auth.token,
    "grafana_secret": lambda f: f.auth.grafana_secret,
    "cooldown": lambda f: f.runtime.cooldown_s,
    "deadline": lambda f: f.runtime.deadline_s,
    "retention_days": lambda f: f.retention.queue_days,
}


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    ctx: typer.Context,
    telemetry: OptionalTelemetry = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar="CASEBOOK_CONFIG", show_default=False,
            help="casebook.yaml: sinks, routes, links, schedule and everything below; flags "
            "and environment variables override it.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            show_default=False,
            help="How people reach this service (report links in delivered messages); "
            "default http://HOST:PORT.",
        ),
    ] = None,
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
        envvar="CASEBOOK_CONCURRENCY", min=1, max=64, help="Investigations in flight at once (default: one per CPU of the "
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
    sources: SourcesOption = None,
    service_label: Annotated[
        list[str] | None,
        typer.Option(
            help="Label that names a remote-written series' service; repeatable, first found "
            "wins (default: service, then job)."
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug.")
    ] = "info",
    retention: Annotated[
        str | None,
        typer.Option(
            envvar="CASEBOOK_RETENTION", metavar="DURATION", show_default=False,
            help="Drop telemetry hours older than this (e.g. 14d) when compacting the store.",
        ),
    ] = None,
    compact_interval: Annotated[
        float,
        typer.Option(min=0, help="Seconds between compactions of the telemetry store (0: never)."),
    ] = 300.0,
) -> None:
    """Receive Alertmanager and Grafana webhooks, investigate each alert, serve the reports."""
    import logging
    import signal
    import sys

    with reported():
        from casebook.executor.intake.app import create_app
        from casebook.executor.intake.config import IntakeConfig
        from casebook.executor.intake.service import IntakeService
        from casebook.executor.sources import load_sources

        settings = None
        if config_file is not None:
            from casebook.executor.config import load_config

            settings = load_config(config_file)
            given = {
                name for name in ctx.params
                if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")
            }

            def pick(name: str, flag):
                from_file = FILE_KEYS[name](settings)
                return flag if name in given or from_file is None else from_file

            telemetry, db, queue = pick("telemetry", telemetry), pick("db", db), pick("queue", queue)
            host, port, public_url = pick("host", host), pick("port", port), pick("public_url", public_url)
            local, ray_address = pick("local", local), pick("ray_address", ray_address)
            concurrency = pick("concurrency", concurrency)
            token, grafana_secret = pick("token", token), pick("grafana_secret", grafana_secret)
            cooldown, deadline = pick("cooldown", cooldown), pick("deadline", deadline)
            retention_days = pick("retention_days", retention_days)
            pack = list(dict.fromkeys([*settings.packs, *(pack or [])]))
        if telemetry is None:
            from casebook.executor.errors import UserError

            raise UserError(
                "no telemetry store: give --telemetry PATH (or CASEBOOK_TELEMETRY), or "
                "`telemetry:` in the file given to --config"
            )

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
            sources=(load_sources(sources) if sources
                     else list(settings.sources) if settings is not None else []),
            service_labels=tuple(service_label or ("service", "job")),
            settings=settings,
            public_url=public_url,
            concurrency=concurrency,
        )
        from casebook.executor.telemetry_store.upkeep import StoreUpkeep, parse_retention

        kept = parse_retention(retention)
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
    if settings is not None and settings.sinks:
        names = ", ".join(f"{s.name} ({s.type})" for s in settings.sinks)
        print(f"delivering to {names}; reports link to {config.base_url}", file=sys.stderr,
              flush=True)
    if not config.loopback and not config.token:
        print(
            f"warning: listening on {host} without --token: anyone who can reach port {port} "
            "can queue alerts and read reports",
            file=sys.stderr,
            flush=True,
        )
    upkeep = None
    if compact_interval > 0:
        upkeep = StoreUpkeep(str(config.telemetry), kept, compact_interval).start()
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
    finally:
        if upkeep is not None:
            upkeep.stop()
    logging.shutdown()


def _log_to_stderr(level: str) -> None:
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     casebook: %(message)s"))
    logger = logging.getLogger("casebook")
    logger.addHandler(handler)
    logger.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
