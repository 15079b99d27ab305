"""Grounding quality on the generated data set: box precision / recall, counts, attributes, speed.

Generates the default data set once (``GeneratorConfig`` defaults, or ``--scale`` / ``--seed``) into
``--generated-dir``, grounds every image LOCO FC uses (``train/good``, ``test/good``,
``test/logical_anomalies``) and prints, per scenario and label, what issue 4's acceptance asks:
precision and recall at IoU 0.5, per-image count accuracy on all and on normal images, and the
accuracy of the attributes the specs declare (written by the attribute stage after the backend).

    OMP_NUM_THREADS=1 python benchmarks/grounding_quality.py                 # classical, scale 0.25
    OMP_NUM_THREADS=1 python benchmarks/grounding_quality.py --scale 0.5 --scenarios screw_bag
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.grounding import GroundingConfig, available_backends, build_backend
from models.grounding.evaluate import evaluate_generated
from models.spec import load_specs
from models.storage import scratch_dir
from models.synth import SCENARIOS, GeneratorConfig, ensure_generated


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="classical", choices=available_backends())
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--scale", type=float, default=GeneratorConfig().scale)
    parser.add_argument("--seed", type=int, default=GeneratorConfig().seed)
    parser.add_argument(
        "--generated-dir", type=Path, help="where the data set is generated (default: a folder in the temp dir)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = GeneratorConfig(scale=args.scale, seed=args.seed)
    out = args.generated_dir or scratch_dir(f"quality-{args.scale}-{args.seed}")
    backend = build_backend(GroundingConfig(backend=args.backend))
    specs = load_specs(None)
    qualities, attributes, speed = [], [], []
    for scenario in args.scenarios:
        ensure_generated(scenario, out, config)
        evaluation = evaluate_generated(backend, out, specs[scenario])
        qualities.append(evaluation.quality)
        attributes.append(evaluation.attributes)
        speed.append([scenario, evaluation.n_images, round(evaluation.images_per_s, 1)])
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(pd.concat(qualities, ignore_index=True).round(3).to_string(index=False))
        print()
        print(pd.concat(attributes, ignore_index=True).round(3).to_string(index=False))
        print()
        print(pd.DataFrame(speed, columns=["scenario", "images", "images/s incl. PNG decoding"]).to_string(index=False))


if __name__ == "__main__":
    main()
