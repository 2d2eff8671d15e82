"""Reports of an investigation: terminal, Markdown, JSON and HTML."""
