"""`casebook backtest`: top-k accuracy of the current analyzers on labelled incidents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casebook.executor.cli.errors import reported
from casebook.executor.errors import UserError


def register(app: typer.Typer) -> None:
    app.command()(backtest)


def backtest(
    dirs: Annotated[list[Path] | None, typer.Argument(
        metavar="[DIR...]", help="Case directories, or folders to search for them.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    min_top1: Annotated[float | None, typer.Option(
        "--min-top1", help="Exit non-zero when top-1 accuracy is below this (0..1).")] = None,
    pack: Annotated[list[str] | None, typer.Option("--pack", help="Extra analyzer pack.")] = None,
    local: Annotated[bool, typer.Option("--local", help="Run in this process, not on Ray.")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="Also store the investigations.")] = None,
    replay: Annotated[Path | None, typer.Option(
        "--replay", metavar="RESULTS",
        help="Re-run the alerts stored in this results database instead of case directories.")
    ] = None,
    telemetry: Annotated[str | None, typer.Option(
        "--telemetry", help="Telemetry store the replayed alerts read (with --replay).")] = None,
    since: Annotated[str, typer.Option(
        help="With --replay: alerts investigated in this last period (14d, 36h, 2w).")] = "14d",
    baseline: Annotated[list[str] | None, typer.Option(
        "--baseline", help="With --replay: compare against these packs re-run now, instead of "
                           "the stored results.")] = None,
    fail_on_regression: Annotated[bool, typer.Option(
        "--fail-on-regression", help="With --replay: exit 1 when an alert's rank-1 cause changes "
                                     "or a top-3 cause is lost (unless feedback said the "
                                     "stored result did not help).")] = False,
) -> None:
    """Replay labelled incidents (case directories) or stored alerts (--replay) through the
    current analyzers; report accuracy, or what changed per alert."""
    import json
    import sys

    if replay is not None:
        _replay(replay, telemetry, since, pack or [], baseline or [], local, ray_address,
                as_json, fail_on_regression)
        return
    with reported():
        if not dirs:
            raise UserError("give case directories (DIR...) or --replay RESULTS")
        from rich.console import Console

        from casebook.executor.backtest import find_cases, run_backtest, summarize
        from casebook.executor.pipeline import build_registry, make_runtime
        from casebook.executor.results import ResultsStore

        cases = find_cases(dirs)
        registry = build_registry(pack or [])
        runtime = make_runtime(local, ray_address)
        console = Console(stderr=True)
        results = ResultsStore(db) if db else None
        try:
            with console.status(f"backtesting {len(cases)} case(s)") as status:
                done = []

                def tick(result):
                    done.append(result)
                    status.update(f"backtesting: {len(done)}/{len(cases)} "
                                  f"({sum(r.top1 for r in done)} right at rank 1)")

                outcomes = run_backtest(cases, registry=registry, runtime=runtime,
                                        results=results, on_case=tick)
        finally:
            if results is not None:
                results.close()
            runtime.shutdown()
        summary = summarize(outcomes)
        if as_json:
            json.dump(summary, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            _print(summary, Console())
        if min_top1 is not None and summary["top1"] < min_top1:
            Console(stderr=True).print(
                f"[bold red]backtest failed:[/] top-1 {summary['top1']:.2%} is below "
                f"--min-top1 {min_top1:.2%}")
            raise typer.Exit(1)


def _print(summary, console) -> None:
    from rich.table import Table

    table = Table(title=f"Backtest: {summary['cases']} cases", header_style="bold",
                  title_justify="left")
    for column in ("group", "cases", "top-1", "top-3"):
        table.add_column(column, justify="left" if column == "group" else "right")
    table.add_row("[bold]all[/]", str(summary["cases"]), f"{summary['top1']:.0%}",
                  f"{summary['top3']:.0%}")
    for title, groups in (("data set", summary["per_dataset"]),
                          ("category", summary["per_category"]),
                          ("class", summary.get("per_class", {}))):
        for name, figures in groups.items():
            table.add_row(f"{title}: {name}", str(figures["cases"]), f"{figures['top1']:.0%}",
                          f"{figures['top3']:.0%}")
    console.print(table)
    if "slices" in summary:
        s = summary["slices"]
        console.print(f"slices: precision {s['precision']:.3f}, recall {s['recall']:.3f}, "
                      f"F1 [bold]{s['f1']:.3f}[/] (TP {s['tp']}, FP {s['fp']}, FN {s['fn']})")
    misses = [c for c in summary["per_case"] if not c["top1"]]
    for case in misses[:10]:
        got = case["ranked"][0] if case["ranked"] else None
        want = case["expected"][0] if case["expected"] else {}
        said = (f"{got['category']} on {got['entity']['kind']} {got['entity']['name']}"
                if got else "no cause")
        wanted = f"{want.get('category') or '?'} on {want.get('entity', {}).get('name')}"
        reason = f" (error: {case['error']})" if case["error"] else ""
        console.print(f"  [red]✗[/] {case['case']}: said {said}, expected {wanted}{reason}",
                      highlight=False)


def _replay(results: Path, telemetry: str | None, since: str, packs: list[str],
            baseline: list[str], local: bool, ray_address: str | None, as_json: bool,
            fail_on_regression: bool) -> None:
    import sys

    with reported():
        from rich.console import Console

        from casebook.executor import replay as replaying
        from casebook.executor.pipeline import build_registry, make_runtime

        if not telemetry:
            raise UserError("--replay needs --telemetry PATH: the store the alerts read")
        from casebook.executor.telemetry_store import TelemetryStore

        TelemetryStore.open(telemetry)  # a wrong path or scheme is named before anything runs
        stored = replaying.stored_alerts(results, replaying.parse_duration(since))
        console = Console(stderr=True)
        if not stored:
            console.print(f"no firing alerts in {results} in the last {since}; nothing to replay")
            return
        overlap = set(packs) & set(baseline)
        if overlap:
            raise UserError(f"--pack and --baseline both name {', '.join(sorted(overlap))}; one "
                            "process holds one version of a module: replay without --baseline "
                            "to compare with the stored results")
        runtime = make_runtime(local, ray_address)
        try:
            if baseline:
                with console.status("re-running the baseline packs"):
                    before = replaying.replay(stored, telemetry=telemetry, runtime=runtime,
                                              registry=build_registry(baseline))
                for item, change in zip(stored, before, strict=True):
                    item.causes = change.after
            registry = build_registry(packs)
            with console.status(f"replaying {len(stored)} alert(s)") as status:
                done: list = []

                def tick(change):
                    done.append(change)
                    status.update(f"replaying: {len(done)}/{len(stored)}")

                changes = replaying.replay(stored, telemetry=telemetry, registry=registry,
                                           runtime=runtime, on_alert=tick)
        finally:
            runtime.shutdown()
        if as_json:
            sys.stdout.write(replaying.dump(changes) + "\n")
        else:
            sys.stdout.write(replaying.render_diff(changes) + "\n")
        regressions = [c for c in changes if c.regression]
        if fail_on_regression and regressions:
            console.print(f"[bold red]replay failed:[/] {len(regressions)} alert(s) regressed; "
                          "see REGRESSION lines above")
            raise typer.Exit(1)
