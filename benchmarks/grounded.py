"""The training-free ``grounded`` method on the generated data: its Table II row, per scenario and on average.

Runs only what the method needs, through the project's own code and the same defaults as
``make demo``: the generated data set (``GeneratorConfig`` defaults), the LOCO FC re-split
(``SplitConfig`` defaults), grounding of every split image (train images calibrate the attribute
stage; the classical backend unless ``--backend``), the grounded answers of the test images
(:func:`models.evaluation.grounded.grounded_answers`) and Table II (:func:`models.evaluation.compute_metrics`).
Prints Table II, the share of measured answers per subquery and the outcome counts.

    OMP_NUM_THREADS=1 python benchmarks/grounded.py
    OMP_NUM_THREADS=1 python benchmarks/grounded.py --scenarios pushpins screw_bag --out /tmp/grounded
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.evaluation import compute_metrics, confusion_summary
from models.evaluation.grounded import grounded_answers, measured_share
from models.grounding import GroundingConfig, available_backends, build_backend, ground_images, queries_from_spec
from models.loco import scan_loco_scenario
from models.spec import load_specs
from models.split import SplitConfig, loco_fc_split, normal_training_ids
from models.storage import scratch_dir
from models.synth import SCENARIOS, GeneratorConfig, ensure_generated


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="classical", choices=available_backends())
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--out", type=Path, help="generated data and grounding cache (default: a temp folder)")
    parser.add_argument("--predictions", type=Path, help="write the prediction rows to this Parquet file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = args.out or scratch_dir("grounded")
    backend = build_backend(GroundingConfig(backend=args.backend))
    specs = load_specs(None)
    frames = []
    for scenario in args.scenarios:
        began = time.perf_counter()
        spec = specs[scenario]
        root = ensure_generated(scenario, out / "loco_data", GeneratorConfig())
        split = loco_fc_split(scan_loco_scenario(root, scenario), SplitConfig())
        run = ground_images(backend, list(zip(split["image_id"], split["image_path"], strict=True)),
                            queries_from_spec(spec), cache_dir=out / "grounding-cache", progress=False, spec=spec,
                            normal_ids=normal_training_ids(split))
        test = split[split["split"] == "test"]
        truth = dict(zip(test["image_id"], test["labels"], strict=True))
        frames.append(grounded_answers(spec, run.objects, test, true_labels=truth))
        print(f"{scenario}: {len(split)} images grounded, {len(test)} test images answered "
              f"in {time.perf_counter() - began:.1f} s", flush=True)
    predictions = pd.concat(frames, ignore_index=True)
    if args.predictions:
        predictions.to_parquet(args.predictions)
    tables = compute_metrics(predictions, {s: specs[s].class_names for s in args.scenarios}, args.scenarios)
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_rows", None):
        print("\nTable II (binary / macro F1, %):")
        print(tables.table_ii.round(2).T.to_string(header=False))
        print("\nOutcomes per scenario:")
        print(confusion_summary(tables.confusion).drop(columns=["model", "method", "configuration"]).to_string(
            index=False))
        print("\nShare of answers measured per subquery:")
        for scenario, part in predictions.groupby("scenario"):
            print(f"  {scenario}: {measured_share(part)}")


if __name__ == "__main__":
    main()
