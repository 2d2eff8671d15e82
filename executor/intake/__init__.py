"""Alert intake: `casebook serve` receives Alertmanager and Grafana webhooks, queues them durably
and investigates them one after another.

    service = IntakeService.open(IntakeConfig(telemetry="telemetry/", db="results.duckdb"))
    app = create_app(service)          # FastAPI; uvicorn serves it

Web code is imported only here, never by the SDK or the other commands.
"""

from casebook.executor.intake.config import IntakeConfig

__all__ = ["IntakeConfig"]
