"""Tests of onepass.predict (the batch inference CLI)."""
