"""The computing core of LogiCls: plain Python and torch, no Dagster imports, unit-testable."""
