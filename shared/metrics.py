"""Prometheus metrics of greenhouse-export (prometheus-client; multiprocess mode for prefork workers)."""
