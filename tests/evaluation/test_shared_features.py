"""Batched inference with shared image features gives the same answers as one-subquery-at-a-time generation."""

from __future__ import annotations

import pandas as pd

from models.evaluation import build_questions, local_answerer, predict, select_examples
from models.spec import get_spec
from models.vlm import LoadedVLM, generate
from tests.evaluation.helpers import cot_table, split_frame

SPEC = get_spec("pushpins")


def test_shared_features_equal_one_at_a_time(tiny_model_dir, random_adapter_dir, pushpins_root) -> None:
    split = split_frame(pushpins_root, "pushpins")
    test = split[split["split"] == "test"]
    questions = build_questions(test, SPEC, select_examples(cot_table(SPEC, split), SPEC))
    truth = dict(zip(test["image_id"], test["labels"], strict=True))
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    vlm.load_adapter(random_adapter_dir)

    def one_at_a_time(qs):
        return [generate(vlm, [q.request()], max_new_tokens=24, batch_size=1)[0] for q in qs]

    kwargs = {"method": "finetuned", "model": "tiny", "true_labels": truth}
    shared = predict(SPEC, questions, local_answerer(vlm, batch_size=5, max_new_tokens=24), **kwargs)
    single = predict(SPEC, questions, one_at_a_time, **kwargs)
    assert len(questions) == len(test) * 4 == 12
    assert shared["raw_output"].nunique() > 5  # the answers differ per image and question: a real comparison
    pd.testing.assert_frame_equal(shared, single)
