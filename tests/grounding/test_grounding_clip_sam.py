"""clip_sam end to end on tiny models saved to files and loaded back like real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from grounding_helpers import QUERIES, synthetic_scene, write_png

from models.grounding import GROUNDING_COLUMNS, GroundingConfig, build_backend, ground_images
from models.grounding.clip_sam import Proposal, masked_crop, query_words, select_masks, vocabulary_words
from models.grounding.tiny import save_tiny_clip
from models.grounding.weights import load_clip, load_sam
from models.objects import rle_decode


def test_ground_images_table_shape_ranges_and_labels(tiny_backend, tmp_path: Path) -> None:
    items = [
        (f"pushpins/test/good/{i:03d}", write_png(tmp_path / f"{i}.png", synthetic_scene(seed=i)))
        for i in range(2)
    ]
    run = ground_images(tiny_backend, items, QUERIES, cache_dir=tmp_path / "cache", progress=False)
    table = run.objects
    assert list(table.columns) == GROUNDING_COLUMNS
    assert len(table) > 0, "relaxed filters must let some masks through"
    assert set(run.images["status"]) == {"grounded"}
    for column in ("object_id", "area", "width", "height"):
        assert table[column].dtype == np.int64
    assert table["score"].dtype == np.float64
    assert set(table["label"]) <= {q.name for q in QUERIES}
    assert set(table["backend"]) == {"clip_sam"}
    assert (table["width"] == 192).all() and (table["height"] == 128).all()
    for row in table.itertuples():
        x0, y0, x1, y1 = row.bbox
        assert 0 <= x0 < x1 <= row.width and 0 <= y0 < y1 <= row.height
        assert x0 <= row.centroid[0] < x1 and y0 <= row.centroid[1] < y1
        assert 0.0 <= row.score <= 1.0
        mask = rle_decode(row.mask_rle)
        assert mask.shape == (row.height, row.width) and int(mask.sum()) == row.area
        assert json.loads(row.attributes).keys() == {"sam_iou", "stability"}
    for _, group in table.groupby("image_id"):
        assert list(group["object_id"]) == list(range(len(group)))
    # The table survives Parquet, as the asset stores it.
    table.to_parquet(tmp_path / "grounding.parquet")
    back = pd.read_parquet(tmp_path / "grounding.parquet")
    assert list(back["bbox"].iloc[0]) == list(table["bbox"].iloc[0])


def test_clip_weights_load_from_pt_too(tiny_config: GroundingConfig, tmp_path: Path) -> None:
    pt = save_tiny_clip(tmp_path / "tiny_clip.pt")
    a, _, _ = load_clip(tiny_config.clip_model, tiny_config.clip_weights, "", torch.device("cpu"))
    b, _, cfg = load_clip(tiny_config.clip_model, pt, "", torch.device("cpu"))
    assert cfg["size"] == (64, 64)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_missing_sam_checkpoint_names_path_and_download(tiny_config: GroundingConfig, tmp_path: Path) -> None:
    missing = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(
        FileNotFoundError, match=r"sam_vit_h_4b8939\.pth not found: download it from https://dl"
    ):
        build_backend(tiny_config.replace(sam_model_type="vit_h", sam_checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError, match="sam_checkpoint is not set"):
        build_backend(tiny_config.replace(sam_checkpoint=""))


def test_missing_clip_weights_names_model_and_tag(tiny_config: GroundingConfig, tmp_path: Path) -> None:
    config = tiny_config.replace(
        clip_model="ViT-L-14",
        clip_pretrained_tag="datacomp_xl_s13b_b90k",
        clip_weights=str(tmp_path / "clip.bin"),
    )
    with pytest.raises(
        FileNotFoundError, match=r"clip\.bin not found: .*'ViT-L-14' pretrained 'datacomp_xl_s13b_b90k'"
    ):
        build_backend(config)


def test_wrong_checkpoint_is_a_clear_error(tiny_config: GroundingConfig) -> None:
    with pytest.raises(ValueError, match="does not load as model type 'vit_b'"):
        load_sam("vit_b", tiny_config.sam_checkpoint, torch.device("cpu"))
    with pytest.raises(ValueError, match="do not load into open_clip model"):
        load_clip(tiny_config.clip_model, tiny_config.sam_checkpoint, "", torch.device("cpu"))


def test_cuda_device_without_cuda_is_refused(tiny_config: GroundingConfig) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        build_backend(tiny_config.replace(device="cuda"))


def test_fingerprint_keys_weights_by_identity_not_path(tiny_backend) -> None:
    fingerprint = tiny_backend.fingerprint()
    assert fingerprint["sam_weights"].startswith("tiny_sam.pth:")
    assert "sam_checkpoint" not in fingerprint and "device" not in fingerprint


def _proposal(mask: np.ndarray) -> Proposal:
    ys, xs = np.nonzero(mask)
    return Proposal(mask, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), int(mask.sum()), 0.9, 0.9)


def test_select_masks_drops_background_low_scores_and_duplicates() -> None:
    base = np.zeros((20, 20), dtype=bool)
    a = base.copy()
    a[2:10, 2:10] = True
    a_dup = a.copy()
    a_dup[10, 2:10] = True  # IoU 64/72 with a
    b = base.copy()
    b[12:18, 12:18] = True
    c = base.copy()
    c[0:4, 14:18] = True
    proposals = [_proposal(m) for m in (a, a_dup, b, c, b)]
    probs = np.array(
        [
            [0.7, 0.2, 0.1],  # pin
            [0.8, 0.1, 0.1],  # pin, better duplicate of 0 -> keeps 1, drops 0
            [0.1, 0.3, 0.6],  # background -> dropped
            [0.35, 0.4, 0.25],  # box
            [0.2, 0.25, 0.55],  # background
        ]
    )
    kept = select_masks(proposals, probs, ["pin", "box", None], min_score=0.3, dedup_iou=0.7)
    assert [(i, label) for i, label, _ in kept] == [(1, "pin"), (3, "box")]
    assert select_masks(proposals, probs, ["pin", "box", None], min_score=0.5, dedup_iou=0.7)[-1][0] == 1


def test_masked_crop_is_square_and_fills_outside_mask() -> None:
    image = np.full((40, 100, 3), 255, dtype=np.uint8)
    mask = np.zeros((40, 100), dtype=bool)
    mask[10:20, 5:95] = True  # a long thin object
    fill = np.array([1, 2, 3], dtype=np.uint8)
    crop = masked_crop(image, _proposal(mask), padding=0.0, size=32, fill=fill)
    assert crop.shape == (32, 32, 3)
    assert (crop[0, 0] == fill).all() and (crop[16, 16] == 255).all()


def test_colour_hint_adds_coloured_words() -> None:
    assert query_words(QUERIES[0]) == ["pushpin", "yellow pin", "yellow pushpin"]


def test_bf16_autocast_path_runs(tiny_config: GroundingConfig) -> None:
    backend = build_backend(tiny_config.replace(precision="bf16", points_per_side=2))
    objects = backend.ground(synthetic_scene(64, 96), QUERIES)
    assert all(o.mask_rle["size"] == [64, 96] for o in objects)


def test_label_probabilities_are_distributions_over_labels(tiny_backend) -> None:
    image = synthetic_scene()
    proposals = tiny_backend.propose(image)
    assert proposals and all(p.mask.shape == image.shape[:2] for p in proposals)
    vocabulary = tiny_backend.vocabulary(QUERIES)
    assert vocabulary.labels == ("pushpin", "box", None)
    assert vocabulary.membership.sum(dim=0).tolist() == [3, 1, len(tiny_backend.config.background_words)]
    probs = tiny_backend.label_probabilities(image, proposals, vocabulary)
    assert probs.shape == (len(proposals), 3)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_vocabulary_without_background_words_has_no_background_label() -> None:
    words, groups, labels = vocabulary_words(QUERIES, ())
    assert labels == ("pushpin", "box")
    assert words == ["pushpin", "yellow pin", "yellow pushpin", "plastic box"] and groups == [0, 0, 0, 1]


def test_the_attribute_stage_writes_the_declared_attributes_after_clip_sam(tiny_backend, tmp_path: Path) -> None:
    """Issue 13: clip_sam writes no attributes of its own beyond SAM's scores; the stage that runs after
    every backend gives each object what its spec object declares (here on meaningless tiny-model masks,
    asked for each object kind alone too, since random CLIP weights favour one word)."""
    from models.grounding import queries_from_spec
    from models.grounding.evaluate import loco_fc_images
    from models.spec import get_spec
    from models.split import normal_training_ids
    from models.synth import GeneratorConfig, ensure_generated

    config = GeneratorConfig(scale=0.1, train_good=2, validation_good=0, test_good=0, per_logical_class=0,
                             per_multi_combo=0, structural=0)
    ensure_generated("splicing_connectors", tmp_path, config)
    spec = get_spec("splicing_connectors")
    images = loco_fc_images(tmp_path, spec.scenario)
    items = list(zip(images["image_id"], images["image_path"], strict=True))
    queries = queries_from_spec(spec)
    seen = set()
    for asked in ([q for q in queries if q.name == "connector"], queries):
        run = ground_images(tiny_backend, items, asked, progress=False, spec=spec,
                            normal_ids=normal_training_ids(images))
        assert run.calibration is not None and run.calibration.images == 2
        for row in run.objects.itertuples():
            attributes = json.loads(row.attributes)
            assert {"sam_iou", "stability", *spec.object(row.label).attributes} <= set(attributes), attributes
            seen.add(row.label)
    assert seen == {"connector", "cable"}
