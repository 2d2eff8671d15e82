"""Seed incident scenarios, an example team pack and dataset adapters."""
