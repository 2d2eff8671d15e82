"""The coverage report of a running `casebook serve`, fetched from GET /api/coverage (the
service holds the results database; no other process can open it meanwhile)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from casebook.executor.errors import UserError


def fetch(url: str, fmt: str, *, token: str | None, since: str | None,
          until: str | None, timeout_s: float = 60.0) -> str:
    """One format of the report (json, markdown or html) as text."""
    query = {"format": fmt} | {k: v for k, v in (("since", since), ("until", until)) if v}
    address = f"{url.rstrip('/')}/api/coverage?{urlencode(query)}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(address, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.read().decode()
    except urllib.error.HTTPError as error:
        try:
            reason = json.loads(error.read()).get("error", "")
        except ValueError:
            reason = ""
        hint = " (give the service's token with --token or CASEBOOK_TOKEN)" if (
            error.code == 401) else ""
        raise UserError(f"{address} answered {error.code}: {reason or error.reason}{hint}") from None
    except (urllib.error.URLError, OSError) as error:
        raise UserError(
            f"cannot reach {url}: {getattr(error, 'reason', error)}; is `casebook serve` "
            "running there?"
        ) from None


def fetch_coverage(url: str, *, token: str | None = None, since: str | None = None,
                   until: str | None = None, html: Path | None = None,
                   markdown: Path | None = None, console=None) -> str:
    """Print the Markdown report (and write HTML/Markdown files when asked); the Markdown."""
    from rich.console import Console
    from rich.markdown import Markdown

    text = fetch(url, "markdown", token=token, since=since, until=until)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(fetch(url, "html", token=token, since=since, until=until))
    console = console or Console()
    console.print(Markdown(text))
    for label, path in (("HTML report", html), ("Markdown report", markdown)):
        if path is not None:
            console.print(f"\n{label}: {path}", highlight=False)
    return text
