"""Helpers around the networks: parameter files, counts, export."""
