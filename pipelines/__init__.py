"""Dagster `Definitions`, jobs, schedules, sensors and command-line entry points."""
