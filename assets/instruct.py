"""Stage 3: instruction data, i.e. subquery paraphrases, augmented images and the CoT data set."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from assets.metadata import frame_data_version, markdown_table
from assets.partitions import scenario_partitions, spec_for
from models.instruct.paraphrase import paraphrase_subquery
from models.spec import paraphrase_invariants
from resources.llm import ChatEndpoint

PARAPHRASE_COLUMNS = ["scenario", "subquery_id", "paraphrase_id", "text", "source", "model"]


class ParaphraseConfig(Config):
    """How many paraphrases each subquery gets (the paper: 10–20)."""

    n_min: int = Field(default=10, description="Fewest paraphrases per subquery.")
    n_max: int = Field(default=20, description="Most paraphrases per subquery.")
    seed: int = Field(default=0, description="Seed of the offline paraphraser.")


@asset(
    partitions_def=scenario_partitions,
    code_version="1",
    group_name="instruction_data",
    kinds={"openai", "parquet"},
    check_specs=[
        AssetCheckSpec("paraphrase_counts", asset="subquery_paraphrases",
                       description="Every subquery has between n_min and n_max paraphrases."),
    ],
)
def subquery_paraphrases(context: AssetExecutionContext, config: ParaphraseConfig, paraphraser: ChatEndpoint):
    """10–20 paraphrases per subquery (row 0 of each subquery is its original text) from an OpenAI-compatible
    endpoint, validated to keep numbers, objects and the answer format; offline rule-based when none is set."""
    spec = spec_for(context.partition_key)
    rows = []
    with paraphraser.client() as client:
        for sub in spec.subqueries:
            found = paraphrase_subquery(sub.text, paraphrase_invariants(sub), config.n_min, config.n_max,
                                        client=client, seed=config.seed)
            rows.append((spec.scenario, sub.id, 0, sub.text, "original", None))
            rows += [(spec.scenario, sub.id, i, p.text, p.source, p.model) for i, p in enumerate(found, start=1)]
        usage = client.report() if client is not None else {}
    table = pd.DataFrame(rows, columns=PARAPHRASE_COLUMNS)
    counts = table[table["source"] != "original"].groupby("subquery_id").size()
    sources = table["source"].value_counts().to_dict()
    yield Output(
        table,
        data_version=frame_data_version(table),
        metadata={
            **paraphraser.describe(),
            "sources": MetadataValue.json(sources),
            "paraphrases_per_subquery": MetadataValue.md(markdown_table(counts.rename("paraphrases").to_frame())),
            "llm_usage": MetadataValue.json(usage),
        },
    )
    short = counts[(counts < config.n_min) | (counts > config.n_max)]
    yield AssetCheckResult(
        check_name="paraphrase_counts",
        passed=short.empty and len(counts) == len(spec.subqueries),
        severity=AssetCheckSeverity.WARN,
        metadata={"min": int(counts.min()), "max": int(counts.max()),
                  "outside_range": MetadataValue.json(short.to_dict())},
    )
