"""Time of the LOCO FC re-split per scenario: reading the tree (every image and mask decoded) and splitting.

The generated default data set (the one ``loco_fc_split`` uses without ``LOGICLS_DATA_ROOT``) is made
once into ``--generated-dir`` (or ``--data-root`` points at a LOCO root, e.g. the real data set).
Prints one line per scenario and the total: images read, best and median seconds of ``--repeat`` runs.

    OMP_NUM_THREADS=1 python benchmarks/split.py
    python benchmarks/split.py --data-root /data/mvtec_loco_anomaly_detection --repeat 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.loco import scan_loco_scenario
from models.split import SplitConfig, loco_fc_split
from models.storage import scratch_dir
from models.synth import SCENARIOS, GeneratorConfig, ensure_generated


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, help="a LOCO root; default: the generated default data set")
    parser.add_argument("--generated-dir", type=Path, default=scratch_dir("bench-generated"),
                        help="where the generated data set is made once and reused")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeat for several; default: all")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (best and median are printed)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    total_images, total_best, total_median = 0, 0.0, 0.0
    for scenario in args.scenario or SCENARIOS:
        root = args.data_root or ensure_generated(scenario, args.generated_dir, GeneratorConfig())
        seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = scan_loco_scenario(root, scenario)
            frame = loco_fc_split(found, SplitConfig())
            seconds.append(time.perf_counter() - start)
        read = len(found.images) + len(found.excluded)
        masks = sum(len(im.mask_paths) for im in found.images)
        best, median = min(seconds), statistics.median(seconds)
        total_images, total_best, total_median = total_images + read, total_best + best, total_median + median
        print(f"{scenario:<20} images {read:4d} (masks {masks:3d}, rows {len(frame):4d})  "
              f"best {best:6.3f} s  median {median:6.3f} s")
    print(f"{'total':<20} images {total_images:4d}{'':27}best {total_best:6.3f} s  median {total_median:6.3f} s")


if __name__ == "__main__":
    main()
