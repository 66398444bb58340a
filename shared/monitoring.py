"""Figures read from the store and the broker for the metrics endpoint, and the endpoint itself."""
