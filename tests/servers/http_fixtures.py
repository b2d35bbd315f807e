"""Fixtures (placeholder until filled)."""
