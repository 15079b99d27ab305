"""Every table asset's Arrow schema, by asset name: what the Parquet IO manager writes.

Each schema is declared once, beside the column list of the code that builds the table; this
registry only names them. Writing every partition with its declared types (not the types pandas
happens to infer from one partition's values: a column that is all ``None`` there would be Arrow
``null``) is what lets users read a table's partitions together, e.g. with
``pyarrow.dataset.dataset("<storage>/lac_predictions")``. Columns a schema does not declare (the
per-scenario metric columns of ``lac_metrics``) keep their inferred types.
"""

from __future__ import annotations

import pyarrow as pa

from models.evaluation.metrics import CLASS_METRIC_SCHEMA, CONFUSION_SCHEMA, TABLE_II_SCHEMA
from models.evaluation.predict import ABLATION_SCHEMA, PREDICTION_SCHEMA
from models.grounding.quality import GROUNDING_QUALITY_SCHEMA
from models.grounding.run import GROUNDING_SCHEMA
from models.instruct.augment import AUGMENT_SCHEMA
from models.instruct.cot import COT_SCHEMA
from models.instruct.paraphrase import PARAPHRASE_SCHEMA
from models.split import SPLIT_SCHEMA
from models.vlm.resampling import DIFFICULTY_SCHEMA, PROBABILITY_SCHEMA

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "loco_fc_split": SPLIT_SCHEMA,
    "grounding": GROUNDING_SCHEMA,
    "grounding_quality": GROUNDING_QUALITY_SCHEMA,
    "subquery_paraphrases": PARAPHRASE_SCHEMA,
    "augmented_images": AUGMENT_SCHEMA,
    "cot_dataset": COT_SCHEMA,
    "difficulty_scores": DIFFICULTY_SCHEMA,
    "resampling_probabilities": PROBABILITY_SCHEMA,
    "lac_predictions": PREDICTION_SCHEMA,
    "lac_ablation": ABLATION_SCHEMA,
    "lac_metrics": TABLE_II_SCHEMA,
    "lac_class_metrics": CLASS_METRIC_SCHEMA,
    "lac_confusion": CONFUSION_SCHEMA,
}
