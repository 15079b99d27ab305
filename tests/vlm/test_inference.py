"""Inference: batched greedy equals one-at-a-time, image-feature reuse changes nothing, adapters reload."""

import pytest

from models.vlm.encoding import request_from_row
from models.vlm.inference import ImageFeatureCache, generate, generate_with_image_cache
from models.vlm.model import LoadedVLM


@pytest.fixture(scope="module")
def tuned(tiny_model_dir, overfit_run):
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    vlm.load_adapter(overfit_run[0].adapter_dir)
    return vlm


@pytest.fixture(scope="module")
def requests(samples):
    return [request_from_row(row) for row in samples.to_dict("records")]


def test_reloaded_adapter_reproduces_the_last_scoring(tuned, requests, overfit_run):
    result, _ = overfit_run
    last = result.difficulty[result.difficulty["epoch"] == 2]
    assert generate(tuned, requests, max_new_tokens=32) == last["generated"].tolist()


def test_batched_generation_equals_one_at_a_time(tuned, requests):
    batched = generate(tuned, requests, max_new_tokens=32, batch_size=8)
    single = [generate(tuned, [r], max_new_tokens=32, batch_size=1)[0] for r in requests]
    assert batched == single
    assert all(text.startswith("<think>") and text.endswith("</answer>") for text in batched)


def test_image_feature_cache_gives_the_same_answers(tuned, requests):
    plain = generate(tuned, requests, max_new_tokens=32, batch_size=4)
    cache = ImageFeatureCache(tuned)
    cached = generate_with_image_cache(tuned, requests, max_new_tokens=32, batch_size=4, cache=cache)
    assert cached == plain
    assert len(cache) == 5  # 4 distinct test images + the shared example, each encoded once


def test_bounded_feature_cache_evicts_least_recently_used(tiny_model_dir, samples):
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    requests = [request_from_row(row) for row in samples.to_dict("records")]
    plain = generate(vlm, requests, max_new_tokens=8, batch_size=4)
    unbounded = ImageFeatureCache(vlm)
    assert generate_with_image_cache(vlm, requests, max_new_tokens=8, batch_size=4, cache=unbounded) == plain
    bounded = ImageFeatureCache(vlm, max_entries=2)
    assert generate_with_image_cache(vlm, requests, max_new_tokens=8, batch_size=4, cache=bounded) == plain
    assert (unbounded.computed, len(unbounded)) == (5, 5)
    # the example is used by every request and stays; the 4 test images alternate, so evicted ones come back
    assert len(bounded) == 2 and bounded.computed == 1 + len(requests)
    with pytest.raises(ValueError, match="at least 1"):
        ImageFeatureCache(vlm, max_entries=0)
