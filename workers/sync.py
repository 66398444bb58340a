"""Sync confirmation: exported items read back from Greenhouse until they match what was sent."""
