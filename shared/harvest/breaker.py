"""Per-credential circuit breaker (placeholder; built by issue 9)."""
