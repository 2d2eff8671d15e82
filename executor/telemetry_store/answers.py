"""Answers to window queries, kept for the life of a connection pinned to one store snapshot.

A Parquet store's connection reads the files its manifests named when it was made, and those
files are never rewritten (`TelemetryStore.snapshot`): the same SELECT over the same window
with the same parameters returns the same rows for as long as the connection lives. Alerts of
one group usually share a window (Alertmanager re-sends, replicas, one incident paging many
ways), so investigating them again asks the same queries of the same data; this answers them
from memory instead of scanning again. New data means a new snapshot, a new connection and an
empty cache, so nothing stale is ever served.

Queries whose answer is not a function of the data are always run: those that read the clock
(`now()`), draw random numbers or samples, or read files by name rather than through the
store's views. Large answers are not kept, and the whole cache is bounded.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from casebook.sdk.telemetry import QueryResult

MAX_ANSWERS = 512
MAX_ROWS = 200_000  # rows held in all
MAX_ROWS_EACH = 20_000

# Functions whose value is not a function of the rows read, and table functions that read
# files directly (they could see files the snapshot does not name).
UNREPEATABLE = re.compile(
    r"\b(now|today|current_(timestamp|date|time|localtimestamp|localtime|setting|query)"
    r"|get_current_\w+|localtimestamp|localtime|transaction_timestamp|epoch_now"
    r"|random|gen_random_uuid|uuid\w*|setseed|nextval|currval|sample|tablesample"
    r"|read_\w+|glob|parquet_\w+|sniff_csv|query_table|query)\b",
    re.IGNORECASE,
)

AnswerKey = tuple[Hashable, str, tuple[tuple[str, Hashable], ...]]


class QueryAnswers:
    """A bounded, thread-safe cache of query results of one pinned connection."""

    def __init__(
        self,
        max_answers: int = MAX_ANSWERS,
        max_rows: int = MAX_ROWS,
        max_rows_each: int = MAX_ROWS_EACH,
    ) -> None:
        self.max_answers = max_answers
        self.max_rows = max_rows
        self.max_rows_each = max_rows_each
        self.hits = 0
        self.misses = 0
        self._kept: OrderedDict[AnswerKey, QueryResult] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def key(self, scope: Hashable, query: str, params: Sequence[Any]) -> AnswerKey | None:
        """The cache key of a query on a window (`scope`), or None when it must always run."""
        if UNREPEATABLE.search(query):
            return None
        # 1, 1.0 and True are equal keys in Python but not the same parameter to DuckDB.
        typed = tuple((type(p).__name__, p) for p in params)
        try:
            hash(typed)
        except TypeError:  # a list or map parameter: rare, and not worth a deep key
            return None
        return (scope, query, typed)

    def get(self, key: AnswerKey, query: str, params: list[Any]) -> QueryResult | None:
        """The kept answer as a fresh result (its own row list), or None."""
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                self.misses += 1
                return None
            self._kept.move_to_end(key)
            self.hits += 1
        return QueryResult(query, params, list(kept.columns), list(kept.rows))

    def put(self, key: AnswerKey, result: QueryResult) -> None:
        rows = len(result.rows)
        if rows > self.max_rows_each:
            return
        kept = QueryResult(result.query, list(result.params), list(result.columns),
                           list(result.rows))
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._rows -= len(old.rows)
            self._kept[key] = kept
            self._rows += rows
            while self._kept and (
                len(self._kept) > self.max_answers or self._rows > self.max_rows
            ):
                _, dropped = self._kept.popitem(last=False)
                self._rows -= len(dropped.rows)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._rows = 0

    def __len__(self) -> int:
        return len(self._kept)

    def __bool__(self) -> bool:  # an empty cache is still a cache (`if source.answers:`)
        return True
