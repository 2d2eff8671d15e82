"""casebook.executor: planning, runtimes, stores, intake, narration, reports and the CLI."""
