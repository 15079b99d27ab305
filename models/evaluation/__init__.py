"""Evaluation of logical anomaly classification: LAC inference with evidence trails, Table II-shaped
metrics, in-context baselines, the training-free grounded method and evidence reports. No Dagster here."""

from models.evaluation.answerers import api_answerer, api_messages, local_answerer
from models.evaluation.grounded import GROUNDED, grounded_answers
from models.evaluation.metrics import MetricsTables, compute_metrics, confusion_summary, missing_scenarios
from models.evaluation.predict import (
    METHODS,
    PREDICTION_COLUMNS,
    Answerer,
    ICLExample,
    Question,
    build_questions,
    predict,
    select_examples,
)
from models.evaluation.report import image_report, scenario_report, write_html

__all__ = [
    "GROUNDED",
    "METHODS",
    "PREDICTION_COLUMNS",
    "Answerer",
    "ICLExample",
    "MetricsTables",
    "Question",
    "api_answerer",
    "api_messages",
    "build_questions",
    "compute_metrics",
    "confusion_summary",
    "grounded_answers",
    "image_report",
    "local_answerer",
    "missing_scenarios",
    "predict",
    "scenario_report",
    "select_examples",
    "write_html",
]
