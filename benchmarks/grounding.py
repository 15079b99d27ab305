"""Grounding throughput and peak memory, per backend.

Each backend runs in its own child process so its peak memory is its own: the parent re-invokes
this script with ``--child`` and collects one JSON line per backend. Images are synthetic scenes of
coloured shapes at ``--size`` unless ``--image-dir`` points at real ones (e.g. a LOCO scenario) or
``--scenario`` names a generated one: its default data set (at ``--scale``) is generated once into
``--generated-dir`` and its LOCO FC images are grounded with the scenario spec's objects, which is
what the ``classical`` backend is made for.
Without checkpoint paths ``clip_sam`` runs on the tiny random models (plumbing speed only); give
``--sam-checkpoint`` and ``--clip-weights`` for the real method. The same command runs on a GPU box
(``--device auto`` picks CUDA there and reports CUDA's peak allocation too).

    OMP_NUM_THREADS=1 python benchmarks/grounding.py                        # every backend, tiny models
    OMP_NUM_THREADS=1 python benchmarks/grounding.py --backend classical --scenario pushpins --images 100
    python benchmarks/grounding.py --backend clip_sam --sam-type vit_h \\
        --sam-checkpoint sam_vit_h_4b8939.pth --clip-model ViT-L-14 --clip-weights clip.bin \\
        --image-dir /data/loco/pushpins/test/good --images 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.grounding import (
    GroundingConfig,
    ObjectQuery,
    available_backends,
    build_backend,
    queries_from_spec,
)
from models.images import read_rgb
from models.storage import scratch_dir
from models.synth import SCENARIOS

QUERIES = [
    ObjectQuery("pushpin", ("pushpin",), colour="yellow", normal_count=15),
    ObjectQuery("box", ("plastic box",), normal_count=1),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=available_backends(),
        help="repeat for several; default: every registered backend",
    )
    parser.add_argument("--images", type=int, default=4, help="images to time (after one warm-up image)")
    parser.add_argument("--size", default="400x800", help="HxW of the synthetic images")
    parser.add_argument("--image-dir", type=Path, help="time these *.png/*.jpg files instead")
    parser.add_argument("--scenario", choices=SCENARIOS, help="time the generated scenario's images instead")
    parser.add_argument("--scale", type=float, default=0.25, help="image scale of the generated data set")
    parser.add_argument(
        "--generated-dir",
        type=Path,
        default=scratch_dir("benchmark-generated"),
        help="where --scenario's data set is generated (reused while current)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--sam-type", default="vit_h")
    parser.add_argument("--sam-checkpoint", help="real SAM weights; unset: tiny random models")
    parser.add_argument("--clip-model", default="ViT-L-14")
    parser.add_argument("--clip-weights", help="real OpenCLIP weights file")
    parser.add_argument("--clip-tag", default="datacomp_xl_s13b_b90k")
    parser.add_argument("--points-per-side", type=int, help="SAM grid (default: 32 real, 8 tiny)")
    parser.add_argument("--points-per-batch", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def load_images(args: argparse.Namespace) -> list[np.ndarray]:
    """One warm-up image plus ``--images`` timed ones, RGB uint8."""
    n = args.images + 1
    if args.image_dir or args.scenario:
        paths = image_paths(args)
        if not paths:
            raise SystemExit(
                f"no .png/.jpg images in {args.image_dir}: point --image-dir at a folder of images"
            )
        return [read_rgb(paths[i % len(paths)]) for i in range(n)]
    height, width = (int(v) for v in args.size.lower().split("x"))
    return [synthetic_scene(height, width, seed) for seed in range(n)]


def image_paths(args: argparse.Namespace) -> list[Path]:
    """``--image-dir``'s images, or the LOCO FC images of ``--scenario``'s generated data set."""
    if args.scenario:
        from models.grounding.evaluate import loco_fc_images
        from models.synth import GeneratorConfig, ensure_generated

        ensure_generated(args.scenario, args.generated_dir, GeneratorConfig(scale=args.scale))
        return [Path(p) for p in loco_fc_images(args.generated_dir, args.scenario)["image_path"]]
    return sorted(p for p in args.image_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def queries(args: argparse.Namespace) -> list[ObjectQuery]:
    """``--scenario``'s spec objects, else pin and box queries (what the synthetic scenes hold)."""
    if not args.scenario:
        return QUERIES
    from models.spec import load_specs

    return queries_from_spec(load_specs(None)[args.scenario])


def synthetic_scene(height: int, width: int, seed: int) -> np.ndarray:
    """Grey canvas with a dozen random coloured rectangles and discs."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 190, dtype=np.uint8)
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(8, max(9, min(height, width) // 8)))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), r, colour, -1)
        else:
            cv2.rectangle(image, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1)
    return image


def make_config(backend: str, args: argparse.Namespace, workdir: Path) -> GroundingConfig:
    """The benchmarked config: real checkpoints when given, else the tiny models for ``clip_sam``."""
    common = {
        "backend": backend,
        "device": args.device,
        "precision": args.precision,
        "points_per_batch": args.points_per_batch,
    }
    if backend != "clip_sam":
        return GroundingConfig(**common)
    if args.sam_checkpoint:
        return GroundingConfig(
            **common,
            sam_model_type=args.sam_type,
            sam_checkpoint=args.sam_checkpoint,
            clip_model=args.clip_model,
            clip_weights=args.clip_weights or "",
            clip_pretrained_tag=args.clip_tag,
            points_per_side=args.points_per_side or 32,
        )
    from models.grounding.tiny import tiny_grounding_config

    return tiny_grounding_config(workdir, **common, points_per_side=args.points_per_side or 8)


def run_child(backend: str, args: argparse.Namespace) -> dict[str, object]:
    """Time one backend in this process; returns the measurements."""
    images = load_images(args)
    objects = queries(args)
    with tempfile.TemporaryDirectory() as workdir:
        config = make_config(backend, args, Path(workdir))
        start = time.perf_counter()
        grounder = build_backend(config)
        load_s = time.perf_counter() - start
        cuda = _cuda()
        start = time.perf_counter()
        grounder.ground(images[0], objects)
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        n_objects = sum(len(grounder.ground(image, objects)) for image in images[1:])
        seconds = time.perf_counter() - start
    result = {
        "backend": backend,
        "device": str(getattr(grounder, "device", "cpu")),
        "image_size": "x".join(str(v) for v in images[1].shape[:2]),
        "images": len(images) - 1,
        "images_per_s": (len(images) - 1) / seconds,
        "s_per_image": seconds / (len(images) - 1),
        "load_s": load_s,
        "warmup_s": warmup_s,
        "objects_per_image": n_objects / (len(images) - 1),
        "peak_rss_mib": _peak_rss_mib(),
    }
    if cuda is not None:
        result["cuda_max_allocated_mib"] = cuda.max_memory_allocated() / 2**20
    return result


def _cuda() -> ModuleType | None:
    """``torch.cuda`` with its peak counter reset, when this backend imported torch and a GPU exists."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux ru_maxrss is in KiB; fall back to the current RSS)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        return psutil.Process().memory_info().rss / 2**20


def _without_backend_args(argv: list[str]) -> list[str]:
    """The command line minus ``--backend X`` / ``--backend=X``, for the per-backend child processes."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--backend":
            skip = True
        elif not arg.startswith("--backend="):
            out.append(arg)
    return out


def main() -> None:
    args = parse_args()
    backends = args.backend or available_backends()
    if args.child:
        print(json.dumps(run_child(backends[0], args)))
        return
    passthrough = _without_backend_args(sys.argv[1:])
    print(
        f"{'backend':10} {'device':8} {'image':>10} {'images/s':>9} {'s/image':>8} {'load s':>7} "
        f"{'objects':>8} {'peak RSS MiB':>13} {'CUDA MiB':>9}"
    )
    for backend in backends:
        child = subprocess.run(
            [sys.executable, __file__, "--child", "--backend", backend, *passthrough],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"{backend:10} failed:\n{child.stderr[-3000:]}")
            continue
        r = json.loads(child.stdout.strip().splitlines()[-1])
        cuda = f"{r['cuda_max_allocated_mib']:9.0f}" if "cuda_max_allocated_mib" in r else f"{'-':>9}"
        print(
            f"{r['backend']:10} {r['device']:8} {r['image_size']:>10} {r['images_per_s']:9.2f} "
            f"{r['s_per_image']:8.2f} {r['load_s']:7.1f} {r['objects_per_image']:8.1f} "
            f"{r['peak_rss_mib']:13.0f} {cuda}"
        )


if __name__ == "__main__":
    main()
