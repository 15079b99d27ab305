"""Dagster assets, one module per stage of the LogiCls chain; each wires resources to `models`."""
