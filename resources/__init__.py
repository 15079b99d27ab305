"""The Dagster plumbing the stage modules share: configurable resources, the Parquet IO manager, the scenario
partitions, tag conventions, metadata helpers and step retries."""
