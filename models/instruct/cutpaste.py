"""Image operations of the augmentation: where an object may go, Poisson paste, removal, noise, style.

Cut-paste must leave an image whose new object count is *visible*: a pasted pushpin has to sit
wholly on the floor of a compartment (not on a wall, not touching another pin), a pasted washer
inside the bag. Placement therefore looks at the pixels, not only at the boxes:

* the **surface** an object lies on is found from the ring of pixels just around it. Without a
  container object, the image is cut into regions of smooth colour by its edges and the regions
  that make up that ring and look like it are the surface (so a fruit stays in its compartment of
  the box, a washer in its bag). Inside a container object of the spec (the pushpin box, the
  cereals that toppings lie on) every container pixel of the ring's colour is surface, with specks
  of texture smaller than a quarter of the object (cereal grain) forgiven, so a pin can go to
  another compartment but never onto a separator;
* a **placement** is a position where the object's whole footprint lies on free surface, i.e.
  surface at least ``gap`` pixels away from every other object; positions are found for all
  offsets at once by correlating the footprint with the blocked map.

Pasting uses ``cv2.seamlessClone`` (Poisson image editing, as the paper). Removal covers the object
with a patch of free surface of the same shape taken from elsewhere in the image (so the hole shows
the surface's own texture and no colour of a neighbouring separator bleeds in), or, where no such
patch fits, fills it with ``cv2.inpaint``.
Photometric augmentations (Gaussian noise, Reinhard colour transfer in Lab) change no object.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Edge threshold on the Sobel magnitude of the blurred Lab image: borders between surfaces (a
# compartment's floor and the box's rim) are far above it, sensor noise after the blur far below.
EDGE_THRESHOLD = 24.0
# A region (or pixel) is the same surface as the object's ring when its Lab colour is this close.
SURFACE_TOLERANCE = 14.0
# Pixels of the object's surroundings cloned with it. ``seamlessClone`` erodes the clone mask by
# 3 pixels before taking the source's gradients, so a smaller margin would lose the object's own
# outline and leave a washed-out ghost; with 6 the seam lies on background.
CLONE_MARGIN = 6
HOLE_MARGIN = 2  # pixels around a removed object that are replaced too (its soft edge)
PATCH_RING = 3  # ring around a hole whose colour the covering patch is matched to
# Pixels this close to an object count as what it lies on even where they do not look like it:
# blurring mixes the object's colour into them, and a clone margin needs them (see CLONE_MARGIN).
HALO = 4


def disk(radius: int) -> np.ndarray:
    """An elliptic structuring element of the given radius (radius 0: a single pixel)."""
    size = 2 * max(int(radius), 0) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask grown by ``radius`` pixels."""
    if radius <= 0:
        return mask.astype(bool)
    return cv2.dilate(mask.astype(np.uint8), disk(radius)).astype(bool)


def _lab(image_rgb: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(image_rgb, (0, 0), 1.2)
    return cv2.cvtColor(blurred, cv2.COLOR_RGB2Lab).astype(np.float32)


def smooth_regions(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label image of the regions of smooth colour (0 = edge pixels), and the blurred Lab image."""
    lab = _lab(image_rgb)
    magnitude = np.zeros(lab.shape[:2], np.float32)
    for channel in cv2.split(lab):
        gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = np.maximum(magnitude, cv2.magnitude(gx, gy))
    smooth = (magnitude < EDGE_THRESHOLD).astype(np.uint8)
    _, labels = cv2.connectedComponents(smooth, connectivity=4)
    return labels, lab


def ring(mask: np.ndarray, others: np.ndarray, inner: int = 3, outer: int = 7) -> np.ndarray:
    """The pixels just around an object, not covered by other objects: what it lies on."""
    return dilate(mask, outer) & ~dilate(mask, inner) & ~others


def surface(
    image_rgb: np.ndarray, mask: np.ndarray, others: np.ndarray, container: np.ndarray | None
) -> np.ndarray:
    """Where an object like ``mask`` may lie (see the module docstring); empty when unclear."""
    around = ring(mask, others)
    if not around.any():
        return np.zeros_like(mask, dtype=bool)
    if container is None:
        return _touching_regions(image_rgb, around)
    return _similar_in_container(image_rgb, around, container, int(mask.sum()))


def _touching_regions(image_rgb: np.ndarray, around: np.ndarray) -> np.ndarray:
    """The smooth regions that make up a good part of the ring and look like it."""
    labels, lab = smooth_regions(image_rgb)
    reference = np.median(lab[around], axis=0)
    n = int(labels.max()) + 1
    sizes = np.bincount(labels.ravel(), minlength=n)
    means = np.stack(
        [np.bincount(labels.ravel(), weights=lab[..., c].ravel(), minlength=n) for c in range(3)], axis=1
    ) / np.maximum(sizes, 1)[:, None]
    touched = np.bincount(labels[around], minlength=n)
    chosen = (np.linalg.norm(means - reference, axis=1) <= SURFACE_TOLERANCE) & (touched >= 0.1 * around.sum())
    chosen[0] = False  # edge pixels
    return chosen[labels]


def _similar_in_container(image_rgb: np.ndarray, around: np.ndarray, container: np.ndarray, area: int) -> np.ndarray:
    """Container pixels of the ring's colour; specks of texture smaller than a quarter of the object
    (cereal grain) count as surface, larger structures (separators, other things) do not."""
    lab = cv2.cvtColor(cv2.medianBlur(image_rgb, 5), cv2.COLOR_RGB2Lab).astype(np.float32)
    reference = np.median(lab[around], axis=0)
    spread = float(np.median(np.linalg.norm(lab[around] - reference, axis=1)))
    similar = np.linalg.norm(lab - reference, axis=2) <= max(SURFACE_TOLERANCE, 3.0 * spread)
    other = (container & ~similar).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(other, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < area / 4
    small[0] = False
    return container & (similar | small[labels])


@dataclass(frozen=True)
class Footprint:
    """An object cut out with a margin: ``mask`` and ``clone`` share the crop's frame at (x0, y0)."""

    x0: int
    y0: int
    mask: np.ndarray  # the object (bool)
    clone: np.ndarray  # the object and ``margin`` pixels of its surroundings (bool)

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape


def footprint(mask: np.ndarray, margin: int = CLONE_MARGIN, ground: np.ndarray | None = None) -> Footprint:
    """The crop of ``mask`` grown by ``margin``, and the offset of the crop in the image.

    With ``ground``, the margin keeps only surface pixels, so a separator or a neighbour next to
    the object is not cloned along with it.
    """
    grown = dilate(mask, margin)
    if ground is not None:
        grown &= mask | ground
    ys, xs = np.nonzero(grown)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Footprint(int(x0), int(y0), mask[y0:y1, x0:x1].copy(), grown[y0:y1, x0:x1].copy())


def placements(free: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Boolean map of top-left corners where the crop ``shape`` lies wholly on ``free``.

    The blocked map is padded with blocked pixels so a shape never leaves the image, and its
    correlation with the shape counts the blocked pixels under every offset at once.
    """
    h, w = shape.shape
    blocked = np.pad((~free).astype(np.float32), ((0, h), (0, w)), constant_values=1.0)
    hits = cv2.filter2D(blocked, cv2.CV_32F, shape.astype(np.float32), anchor=(0, 0),
                        borderType=cv2.BORDER_CONSTANT)
    return hits[: free.shape[0], : free.shape[1]] < 0.5


def paste(dst_rgb: np.ndarray, src_rgb: np.ndarray, foot: Footprint, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-clone the footprint from ``src`` so that its crop's top-left lands at (x, y).

    Returns the new image and the object's mask at its new place. ``seamlessClone`` centres the
    bounding box of the clone mask on the point it is given; the point is chosen so that this box
    lands exactly at the requested offset.
    """
    h, w = foot.shape
    src = src_rgb[foot.y0 : foot.y0 + h, foot.x0 : foot.x0 + w]
    # seamlessClone zeroes the mask's outer pixel ring; pad so the clone region is untouched.
    pad = 1
    src = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    clone = np.pad(foot.clone, pad).astype(np.uint8) * 255
    bx, by, bw, bh = cv2.boundingRect(clone)
    centre = (x + (bx - pad) + bw // 2, y + (by - pad) + bh // 2)
    out = cv2.seamlessClone(src, dst_rgb, clone, centre, cv2.NORMAL_CLONE)
    moved = np.zeros(dst_rgb.shape[:2], bool)
    moved[y : y + h, x : x + w] = foot.mask
    return out, moved


def hole(mask: np.ndarray, ground: np.ndarray, margin: int = HOLE_MARGIN) -> np.ndarray:
    """What removing an object replaces: the object and its soft edge, but not a neighbouring
    separator or object (only surface pixels of the margin)."""
    return mask | (dilate(mask, margin) & ground)


def cover(image_rgb: np.ndarray, region: np.ndarray, ground: np.ndarray, x: int, y: int) -> np.ndarray:
    """``region`` covered with the image's own pixels of free surface elsewhere.

    ``(x, y)`` is the top-left of the source crop, a placement of :func:`patch_shape`. Surfaces
    are shaded (a floor darker near its walls), so the patch is corrected by the plane that best
    maps its surroundings onto the target's (least squares over the ring of surface pixels around
    both), leaving no lighter or darker silhouette; it is faded in over one pixel.
    """
    foot = footprint(region, PATCH_RING)
    h, w = foot.shape
    target = image_rgb[foot.y0 : foot.y0 + h, foot.x0 : foot.x0 + w].astype(np.float32)
    patch = image_rgb[y : y + h, x : x + w].astype(np.float32)
    around = (foot.clone & ~foot.mask & ground[foot.y0 : foot.y0 + h, foot.x0 : foot.x0 + w]
              & ground[y : y + h, x : x + w])
    patch += _shading(target - patch, around)
    alpha = np.clip(2.0 * cv2.GaussianBlur(foot.mask.astype(np.float32), (0, 0), 1.0), 0.0, 1.0)
    alpha[foot.mask] = 1.0
    blended = alpha[..., None] * patch + (1.0 - alpha[..., None]) * target
    out = image_rgb.copy()
    out[foot.y0 : foot.y0 + h, foot.x0 : foot.x0 + w] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def _shading(difference: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The plane a + b·x + c·y per channel fitted to ``difference`` at ``where``, over the whole crop
    (a constant when too few pixels fix a plane, zero when there are none)."""
    ys, xs = np.nonzero(where)
    if xs.size == 0:
        return np.zeros_like(difference)
    if xs.size < 12:
        return np.broadcast_to(np.median(difference[where], axis=0), difference.shape).copy()
    design = np.stack([np.ones(xs.size), xs, ys], axis=1).astype(np.float32)
    coef, *_ = np.linalg.lstsq(design, difference[ys, xs], rcond=None)
    gy, gx = np.mgrid[: difference.shape[0], : difference.shape[1]]
    grid = np.stack([np.ones_like(gx), gx, gy], axis=-1).astype(np.float32)
    return grid @ coef.astype(np.float32)


def patch_shape(region: np.ndarray) -> np.ndarray:
    """The crop a source patch for :func:`cover` must have free: the region and a ring around it."""
    return footprint(region, PATCH_RING).clone


def inpaint(image_rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``region`` filled from its border (Telea): the removal when no free surface patch fits."""
    return cv2.inpaint(image_rgb, region.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)


def gaussian_noise(image_rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of standard deviation ``sigma`` grey levels."""
    noisy = image_rgb.astype(np.float32) + rng.normal(0.0, sigma, image_rgb.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def reinhard(image_rgb: np.ndarray, style_rgb: np.ndarray) -> np.ndarray:
    """Reinhard et al.'s colour transfer: match the mean and spread of each Lab channel to ``style``."""
    src = cv2.cvtColor(image_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    ref = cv2.cvtColor(style_rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    s_mean, s_std = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0)
    r_mean, r_std = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0)
    out = (src - s_mean) / np.maximum(s_std, 1e-6) * r_std + r_mean
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
