"""Structural anomalies: a colour blotch or a scratch, only so that readers see the folder.

The LOCO FC re-split ignores structural images; these marks are drawn over the finished scene and
leave its object annotations unchanged (they describe the scene under the mark).
"""

from __future__ import annotations

import numpy as np

from models.synth.canvas import Canvas, jitter, polygon, polyline

BLOTCH = (112, 58, 150)
SCRATCH = (236, 236, 230)


def draw_structural(canvas: Canvas, defect: str) -> None:
    """Draw one structural mark of type ``defect`` and record its region."""
    rng = canvas.rng
    h, w = canvas.shape
    centre = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
    size = 0.06 * min(h, w)
    if rng.random() < 0.5:
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = size * rng.uniform(0.6, 1.2, 9)
        points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        mask = polygon(canvas.shape, points)
        canvas.paint(mask, jitter(rng, BLOTCH, 10), grain=0.05)
    else:
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction)
        steps = np.linspace(-2.5, 2.5, 6)[:, None] * size * direction
        wobble = rng.normal(0, 0.15 * size, (6, 2))
        mask = polyline(canvas.shape, centre + steps + wobble, max(2, round(0.12 * size)))
        canvas.paint(mask, jitter(rng, SCRATCH, 6))
    canvas.mark(defect, mask)
