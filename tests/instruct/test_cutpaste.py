"""Image operations of the augmentation on synthetic pictures: exact offsets, placements, removal."""

from __future__ import annotations

import cv2
import numpy as np

from models.instruct import cutpaste


def _canvas() -> tuple[np.ndarray, np.ndarray]:
    """A grey floor with one red disc (the object) and a white wall down the middle."""
    image = np.full((80, 120, 3), (120, 124, 130), np.uint8)
    image[:, 58:62] = 230
    cv2.circle(image, (25, 40), 8, (200, 40, 40), -1)
    mask = np.zeros(image.shape[:2], bool)
    cv2.circle(mask.view(np.uint8), (25, 40), 8, 1, -1)
    return image, mask


def test_paste_lands_exactly_at_the_requested_offset() -> None:
    image, mask = _canvas()
    foot = cutpaste.footprint(mask)
    out, moved = cutpaste.paste(image, image, foot, 70, 10)
    shift = (70 - foot.x0, 10 - foot.y0)  # the crop's top-left moves from (x0, y0) to (70, 10)
    assert np.array_equal(moved, np.roll(mask, shift[::-1], axis=(0, 1)))
    assert np.abs(out[moved].astype(int).mean(0) - (200, 40, 40)).max() < 12  # red, not a ghost
    assert (out[mask] == image[mask]).all()  # the original stays


def test_placements_keep_the_shape_on_free_pixels_and_inside_the_image() -> None:
    free = np.zeros((50, 60), bool)
    free[10:30, 5:25] = True
    shape = np.ones((5, 7), bool)
    ok = cutpaste.placements(free, shape)
    ys, xs = np.nonzero(ok)
    assert xs.min() == 5 and xs.max() == 25 - 7 and ys.min() == 10 and ys.max() == 30 - 5
    assert not cutpaste.placements(np.ones((4, 4), bool), shape).any()  # never past the border


def test_surface_stops_at_the_wall_and_removal_leaves_floor() -> None:
    image, mask = _canvas()
    ground = cutpaste.surface(image, mask, np.zeros_like(mask), None)
    assert ground[40, 45] and not ground[40, 60] and not ground[40, 90]  # own side only, not the wall
    region = cutpaste.hole(mask, ground)
    free = ground & ~cutpaste.dilate(mask, 3)
    ys, xs = np.nonzero(cutpaste.placements(free, cutpaste.patch_shape(region)))
    out = cutpaste.cover(image, region, ground, int(xs[0]), int(ys[0]))
    assert np.abs(out[mask].astype(int).mean(0) - (120, 124, 130)).max() < 4
