"""Logging: human-readable text on a terminal, JSON lines otherwise (python-json-logger); secrets and emails redacted."""
