"""The built-in analyzer pack, one module per concern."""
