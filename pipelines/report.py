"""Evidence reports from the latest materialized predictions: a scenario's page, or one page per image on demand.

    python -m pipelines.report pushpins                      # <storage>/reports/pushpins.html
    python -m pipelines.report pushpins --image-id pushpins/test/logical_anomalies/003
                                                             # <storage>/reports/images/pushpins__test__….html

Reads ``<LOGICLS_STORAGE>/lac_predictions/<scenario>.parquet`` and, when present, the grounding
table for the boxes; prints the path of every page written. Bad input (unknown or broken scenario,
unknown image, no predictions yet, ``--out`` naming a directory for one page, storage that cannot be
written) prints one line on stderr naming the file or flag and the fix, and exits with 2
(``pipelines/cli.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from models.evaluation import image_report, scenario_report, write_html
from models.evaluation.report import image_file_name
from models.spec import get_spec
from models.storage import StorageLayout, scenario_dir
from pipelines.cli import EXIT_BAD_INPUT, ArgumentParser, BadInput, run

__all__ = ["EXIT_BAD_INPUT", "main"]
STORAGE_HINT = "pass --out with a writable path, or point LOGICLS_STORAGE at a writable folder"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m pipelines.report", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario")
    parser.add_argument("--image-id", action="append", default=[], help="one page for this image (repeatable)")
    parser.add_argument("--out", type=Path, help="where to write (a file for one page, else a directory)")
    return parser.parse_args(argv)


def write_reports(args: argparse.Namespace) -> list[Path]:
    spec = get_spec(args.scenario, scenario_dir())
    storage = StorageLayout.from_environment()
    predictions_path = storage.table("lac_predictions", spec.scenario)
    if not predictions_path.is_file():
        raise FileNotFoundError(f"no predictions at {predictions_path}: materialize lac_predictions first")
    predictions = pd.read_parquet(predictions_path)
    grounding_path = storage.table("grounding", spec.scenario)
    grounding = pd.read_parquet(grounding_path) if grounding_path.is_file() else None
    one_page = len(args.image_id) <= 1
    if args.out and one_page and args.out.is_dir():
        name = image_file_name(args.image_id[0]) if args.image_id else f"{spec.scenario}.html"
        raise BadInput(f"--out {args.out} is a directory: give the HTML file to write, e.g. --out {args.out / name}")
    if not args.image_id:
        target = args.out or storage.report(spec.scenario)
        return [write_html(target, scenario_report(spec, predictions, grounding))]
    folder = args.out if args.out and not one_page else storage.image_reports
    paths = []
    for image_id in args.image_id:
        target = args.out if args.out and one_page else folder / image_file_name(image_id)
        paths.append(write_html(target, image_report(spec, predictions, image_id, grounding)))
    return paths


def main(argv: list[str] | None = None) -> int:
    def lines() -> Iterator[str]:
        for path in write_reports(parse_args(argv)):
            yield str(path)

    return run("report", lines, STORAGE_HINT)


if __name__ == "__main__":
    sys.exit(main())
