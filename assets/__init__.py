"""Dagster assets, one module per stage of the LogiCls chain and nothing else; each wires resources to `models`.

A module's name is its stage's name: the asset group and the single-stage job (`pipelines.definitions`
lists the stages in order). Plumbing the stages share lives in `resources/`, the computing core in `models/`.
"""
