"""Command line: generate MVTec LOCO AD-format scenarios.

``python -m models.synth --scenarios pushpins screw_bag --seed 0`` writes where the ``generated_loco``
asset does (``<LOGICLS_STORAGE>/generated``, or ``--out DIR``) and reuses scenarios already generated
with the same settings unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

from models.storage import StorageLayout
from models.synth.config import SCENARIOS, GeneratorConfig
from models.synth.generate import ensure_generated, generate_scenario, image_count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(prog="python -m models.synth", description=__doc__.splitlines()[0])
    default_out = StorageLayout.from_environment().generated
    parser.add_argument(
        "--out", type=Path, default=default_out,
        help=f"output folder (gets loco/, annotations/, manifest/); default: {default_out}",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        metavar="NAME",
        help=f"scenarios to generate (default: all of {', '.join(SCENARIOS)})",
    )
    for f in fields(GeneratorConfig):
        value = getattr(defaults, f.name)
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(value), default=value,
            help=f"{f.metadata['help']} Default {value}.",
        )
    parser.add_argument("--force", action="store_true", help="regenerate even if a matching tree exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = GeneratorConfig(**{f.name: getattr(args, f.name) for f in fields(GeneratorConfig)})
    except (TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    make = generate_scenario if args.force else ensure_generated
    total = sum(image_count(c, config) for c in args.scenarios)
    start = time.perf_counter()
    with tqdm(total=total, unit="img", desc="generating") as bar:
        for scenario in args.scenarios:
            bar.set_postfix_str(scenario)
            done_before = bar.n
            root = make(scenario, args.out, config, progress=bar.update)
            bar.update(image_count(scenario, config) - (bar.n - done_before))  # reused: nothing drawn
    print(f"LOCO root: {root} ({total} images, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
