"""Where analyzers run: the contract every runtime keeps, and the two runtimes.

- `contract`: `RunContext` and the `Runtime` protocol the investigation loop drives.
- `local`: in this process's control, analyzers in one replaceable child process (`child`).
- `cluster`: on Ray; `pool` keeps the long-lived worker actors (`worker`) and the `scans`
  actor (each shared grouped query once per investigation), `batches` cuts and tracks the work
  sent to them, `window_cache` prepares an investigation's window once.
- `memory_guard` and `heap`: the memory ceilings and the heap habits of long-lived processes.

Importing this package imports neither Ray nor the child process; `pipeline.make_runtime`
picks one.
"""

from casebook.executor.runtime.contract import RunContext, Runtime

__all__ = ["RunContext", "Runtime"]
