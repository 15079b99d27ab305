"""Classify new images: which logical rule each one breaks, and the answers that say so, as JSON lines.

    python -m pipelines.classify IMAGE... --scenario pushpins [--adapter PATH] [--method finetuned|icl|grounded]

Every subquery of the scenario is asked in the paper's Fig. 3 format, exactly as in the
evaluation: the fine-tuned adapter of the scenario (by default the latest materialized
``vlm_adapter``, ``<LOGICLS_STORAGE>/checkpoints/vlm_adapter/<scenario>/final``) on the base model
of ``LOGICLS_VLM_CHECKPOINT`` (the tiny built-in model when unset), or ``--method icl`` for the base
model alone. The in-context example comes from the latest ``cot_dataset`` Parquet, or else from the
scenario's first normal training image in ``loco_fc_split`` with its normal answers.

``--method grounded`` asks no model: the images are grounded by the backend the ``LOGICLS_GROUNDING_*``
variables select (the classical segmenter by default; results cached in the storage's grounding
cache), their attributes read with the calibration of the scenario's latest ``grounding`` table, and
every subquery answered through the spec's measures (``models.evaluation.grounded``).

Output: one JSON object per image and line on stdout: ``image``, ``scenario``, ``method``,
``model``, ``labels`` (the predicted label set), ``evidence`` (the trail, one line per fired rule
and unreadable answer), ``rules`` (the fired rules with the answers they read) and ``answers`` (per
subquery: answer text, parsed value, whether parseable, and for ``grounded`` whether a measure gave
it: ``measured``, false where the normal answer was assumed). Bad input (an unreadable, oversized or
too elongated image, an unknown or broken scenario spec, a missing or damaged adapter, no example, a
bad flag value, no grounding table for ``grounded``, storage that cannot be written when the built-in
model must be built) prints one line on stderr naming the file or flag and the fix, and exits with 2
(``pipelines/cli.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import transformers
from PIL import Image

from models.evaluation import build_questions, local_answerer, predict, select_examples
from models.evaluation.answerers import CHECKPOINT_MIN_NEW_TOKENS, PredictionConfig
from models.evaluation.grounded import GROUNDED, grounded_answers
from models.evaluation.predict import ICLExample, normal_answer_examples
from models.grounding import calibration_of, ground_images, queries_from_spec
from models.spec import ScenarioSpec, UnparseablePolicy, get_spec
from models.storage import StorageLayout, scenario_dir, vlm_checkpoint
from models.vlm import trained_kind
from models.vlm.encoding import image_shape_problem
from pipelines.cli import EXIT_BAD_INPUT, ArgumentParser, BadInput, positive_int, run
from resources.grounding import grounder_from_env
from resources.storage import StorageResource
from resources.vlm import VisionLanguageModel

__all__ = ["EXIT_BAD_INPUT", "main"]
STORAGE_HINT = ("classify writes only the built-in model, once: point LOGICLS_STORAGE at a writable folder, "
                "or LOGICLS_VLM_CHECKPOINT at a Qwen2.5-VL checkpoint")
DEFAULTS = PredictionConfig()  # lac_predictions' generation settings; the flags override them
# What PIL raises for a file that is not a whole image (truncated data, broken chunks, not an image).
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m pipelines.classify", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path, help="image files to classify")
    parser.add_argument("--scenario", required=True, help="the scenario (spec) the images belong to")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory (default: the latest vlm_adapter)")
    parser.add_argument("--method", choices=["finetuned", "icl", GROUNDED], default="finetuned",
                        help="finetuned: base model + adapter; icl: the base model in context; grounded: no "
                             "model, the images' grounding through the spec's measures")
    parser.add_argument("--max-new-tokens", type=positive_int,
                        help="generation limit (default: room for the example's target; at least "
                             f"{CHECKPOINT_MIN_NEW_TOKENS} for a real model)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                        help="most questions generated together (default: as many as --token-budget holds)")
    parser.add_argument("--token-budget", type=positive_int, default=DEFAULTS.token_budget,
                        help="tokens per generation batch: questions × (longest prompt + generation limit)")
    parser.add_argument("--unparseable-policy", choices=[p.value for p in UnparseablePolicy],
                        default=DEFAULTS.unparseable_policy)
    return parser.parse_args(argv)


def load_scenario(name: str) -> ScenarioSpec:
    """The scenario's spec (a broken user spec of that name: its SpecError, naming file and fields)."""
    return get_spec(name, scenario_dir())


def check_images(paths: list[Path]) -> list[Path]:
    """Each path must decode in full (a truncated file fails here, not mid-inference), within PIL's
    decompression-bomb limit, in a shape the model's processor takes."""
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                size = image.size
        except Image.DecompressionBombError as error:
            raise BadInput(f"image {path} is too large to decode safely ({error}): downscale it") from None
        except IMAGE_ERRORS as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else "not a readable image"
            raise BadInput(f"cannot read image {path}: {reason}") from None
        problem = image_shape_problem(*size)
        if problem:
            raise BadInput(f"image {path} {problem}")
    return paths


def resolve_adapter(args: argparse.Namespace, storage: StorageLayout) -> Path | None:
    if args.method in ("icl", GROUNDED):
        return None
    directory = args.adapter or storage.adapter_dir(args.scenario)
    try:
        trained_kind(directory)  # a LoRA adapter or a fully fine-tuned checkpoint
    except FileNotFoundError:
        raise BadInput(f"no fine-tuned weights (LoRA adapter or full checkpoint) at {directory}: materialize "
                       f"vlm_adapter for {args.scenario}, pass --adapter, or use --method icl") from None
    return directory


def load_examples(spec: ScenarioSpec, storage: StorageLayout) -> dict[str, ICLExample]:
    """From the latest cot_dataset, else the first normal training image of loco_fc_split."""
    cot_path = storage.table("cot_dataset", spec.scenario)
    split_path = storage.table("loco_fc_split", spec.scenario)
    if cot_path.is_file():
        return select_examples(pd.read_parquet(cot_path), spec)
    if split_path.is_file():
        split = pd.read_parquet(split_path)
        normal = split[(split["split"] == "train") & split["labels"].map(lambda x: list(x) == ["normal"])]
        if not normal.empty:
            first = normal.sort_values("image_id").iloc[0]
            return normal_answer_examples(spec, str(first["image_id"]), str(first["image_path"]))
    raise BadInput(f"no in-context example for {spec.scenario}: materialize cot_dataset or loco_fc_split "
                   f"(looked for {cot_path} and {split_path})")


def grounded_table(spec: ScenarioSpec, frame: pd.DataFrame, storage: StorageLayout,
                   policy: UnparseablePolicy) -> pd.DataFrame:
    """The grounded method's rows: the images grounded (cached), their attributes read with the calibration of
    the scenario's grounding table, the subqueries answered through the spec's measures."""
    stored = storage.table("grounding", spec.scenario)
    if not stored.is_file():
        raise BadInput(f"no grounding table at {stored}: materialize grounding for {spec.scenario} first (its "
                       "attribute calibration reads the new images), or choose --method finetuned or icl")
    grounder = grounder_from_env(cache_dir=str(storage.cache("grounding")))
    run = ground_images(grounder.build(), list(zip(frame["image_id"], frame["image_path"], strict=True)),
                        queries_from_spec(spec), cache_dir=grounder.cache_path, progress=False, spec=spec,
                        calibration=calibration_of(pd.read_parquet(stored)))
    if not run.failures.empty:
        failure = run.failures.iloc[0]
        raise BadInput(f"cannot ground image {failure['image_path']}: {failure['error']}")
    return grounded_answers(spec, run.objects, frame, policy=policy)


def classify(args: argparse.Namespace) -> list[dict[str, Any]]:
    spec = load_scenario(args.scenario)
    images = check_images(list(dict.fromkeys(args.images)))
    storage = StorageLayout.from_environment()
    settings = PredictionConfig(batch_size=args.batch_size, token_budget=args.token_budget,
                                max_new_tokens=args.max_new_tokens,
                                unparseable_policy=args.unparseable_policy)
    frame = pd.DataFrame({"image_id": [str(p) for p in images], "image_path": [str(p) for p in images]})
    if args.method == GROUNDED:
        table = grounded_table(spec, frame, storage, settings.policy)
        return [_image_result(rows) for _, rows in table.groupby("image_id", sort=False)]
    adapter = resolve_adapter(args, storage)
    examples = load_examples(spec, storage)
    resource = VisionLanguageModel(checkpoint_dir=vlm_checkpoint(), storage=StorageResource(root=str(storage.root)))
    vlm = resource.load(adapter)
    questions = build_questions(frame, spec, examples)
    answerer = local_answerer(vlm, batch_size=settings.batch_size, token_budget=settings.token_budget,
                              max_new_tokens=settings.generation_limit([e.target for e in examples.values()],
                                                                       vlm.tokenizer, tiny=resource.is_tiny))
    table = predict(spec, questions, answerer, method=args.method, model=resource.model_dir().name,
                    true_labels=None, policy=settings.policy)
    return [_image_result(rows) for _, rows in table.groupby("image_id", sort=False)]


def _image_result(rows: pd.DataFrame) -> dict[str, Any]:
    first = rows.iloc[0]
    answers = {
        r.subquery_id: {"answer": None if pd.isna(r.answer_text) else r.answer_text,
                        "value": json.loads(r.answer_value) if r.parseable else None,
                        "parseable": bool(r.parseable), "reason": None if pd.isna(r.parse_reason) else r.parse_reason}
        | ({} if r.measured is None else {"measured": bool(r.measured)})
        for r in rows.itertuples(index=False)
    }
    return {"image": first["image_path"], "scenario": first["scenario"], "method": first["method"],
            "model": first["model"], "labels": list(first["predicted_labels"]),
            "evidence": list(first["evidence_lines"]), "rules": json.loads(first["evidence"]), "answers": answers}


def main(argv: list[str] | None = None) -> int:
    transformers.utils.logging.disable_progress_bar()  # stderr stays for warnings and the error line

    def lines() -> Iterator[str]:
        for result in classify(parse_args(argv)):
            yield json.dumps(result, ensure_ascii=False)

    return run("classify", lines, STORAGE_HINT)


if __name__ == "__main__":
    sys.exit(main())
