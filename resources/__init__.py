"""Configurable Dagster resources and IO managers."""
