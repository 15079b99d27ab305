"""Evidence reports from the latest materialized predictions: a scenario's page, or one page per image on demand.

    python -m pipelines.report pushpins                      # <storage>/reports/pushpins.html
    python -m pipelines.report pushpins --image-id pushpins/test/logical_anomalies/003
                                                             # <storage>/reports/images/pushpins__test__….html

Reads ``<LOGICLS_STORAGE>/lac_predictions/<scenario>.parquet`` and, when present, the grounding
table for the boxes; prints the path of every page written. Bad input (unknown scenario or image,
no predictions yet) prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from assets.paths import reports_dir
from models.evaluation import image_report, scenario_report, write_html
from models.evaluation.report import image_file_name
from models.spec import get_spec
from resources.settings import storage_dir

EXIT_BAD_INPUT = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario")
    parser.add_argument("--image-id", action="append", default=[], help="one page for this image (repeatable)")
    parser.add_argument("--out", type=Path, help="where to write (a file for one page, else a directory)")
    return parser.parse_args(argv)


def write_reports(args: argparse.Namespace) -> list[Path]:
    spec = get_spec(args.scenario, os.getenv("LOGICLS_SCENARIO_DIR") or None)
    storage = Path(storage_dir())
    predictions_path = storage / "lac_predictions" / f"{spec.scenario}.parquet"
    if not predictions_path.is_file():
        raise FileNotFoundError(f"no predictions at {predictions_path}: materialize lac_predictions first")
    predictions = pd.read_parquet(predictions_path)
    grounding_path = storage / "grounding" / f"{spec.scenario}.parquet"
    grounding = pd.read_parquet(grounding_path) if grounding_path.is_file() else None
    if not args.image_id:
        target = args.out or reports_dir(storage) / f"{spec.scenario}.html"
        return [write_html(target, scenario_report(spec, predictions, grounding))]
    folder = args.out if args.out and len(args.image_id) > 1 else reports_dir(storage) / "images"
    paths = []
    for image_id in args.image_id:
        target = args.out if args.out and len(args.image_id) == 1 else folder / image_file_name(image_id)
        paths.append(write_html(target, image_report(spec, predictions, image_id, grounding)))
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        paths = write_reports(args)
    except (KeyError, FileNotFoundError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) else str(error)
        print(f"report: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
