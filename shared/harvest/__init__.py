"""Harvest v3 boundary: client, models, errors. Every Harvest path and field name lives in this package."""
