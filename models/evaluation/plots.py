"""The Table II bar chart shown in the UI: binary and macro F1 per scenario and on average.

Drawn with matplotlib's object API on an Agg canvas (no pyplot): no global backend or figure
state, so it is safe in any worker process or thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.evaluation.metrics import row_label


def table_ii_figure(table_ii: pd.DataFrame, scenarios: Sequence[str]) -> np.ndarray:
    """Grouped bars (one colour per Table II row) for each scenario and the average, as RGB pixels."""
    groups = [*scenarios, "average"]
    rows = table_ii.to_dict("records")
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(groups))
    fig = Figure(figsize=(max(8.0, 2.4 * len(groups)), 3.8), dpi=100)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric in zip(axes, ("binary_f1", "macro_f1"), strict=True):
        for i, row in enumerate(rows):
            values = [row.get(f"{g}/{metric}", np.nan) for g in groups]
            ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=row_label(row))
        ax.set_title(metric.replace("_f1", " F1"))
        ax.set_xticks(x, [g.replace("_", "\n") for g in groups], fontsize=8)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("%")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
