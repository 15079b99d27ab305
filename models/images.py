"""Reading the data set's image files after the re-split, and pictures inlined as ``data:`` URIs.

Reading: one reader, :func:`read_rgb`, for every stage that looks at pixels (grounding,
augmentation, the model's prompts, reports), with one error that says what is wrong.

``loco_fc_split`` decodes every image once when it enters (:mod:`models.loco`) and leaves out the
ones that do not decode, so later stages read files that decoded then. A file can still go missing
or be damaged afterwards (an interrupted copy over the data set, a disk error): the error then
says which of the two it is and how to fix it, rather than a ``FileNotFoundError`` for a file that
exists.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

REFRESH_HINT = "or re-materialize loco_fc_split (it leaves out images that do not decode) and the stages after it"


class UnreadableImageError(ValueError):
    """An image file that is missing, cannot be read or does not decode; the message names it and the fix."""


def read_rgb(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """The image as H×W×3 RGB uint8 (grey, alpha and 16-bit files are converted).

    ``data``: the file's bytes when the caller has read them already (e.g. to hash them).
    """
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UnreadableImageError(f"image {path} does not exist: restore it, {REFRESH_HINT}") from None
        except OSError as exc:
            raise UnreadableImageError(
                f"image {path} cannot be read ({exc.strerror or exc}): fix its permissions, {REFRESH_HINT}"
            ) from None
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImageError(
            f"image {path} exists but does not decode (truncated, damaged or not an image): "
            f"restore it from the data set, {REFRESH_HINT}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,…``: a file inline in Markdown, HTML or a chat request."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_data_uri(image_rgb: np.ndarray, max_width: int, fmt: Literal["png", "jpeg"] = "png",
                   quality: int = 85) -> str:
    """An RGB picture as a PNG or JPEG ``data:`` URI no wider than ``max_width`` pixels.

    Pictures in metadata and reports are shrunk (area interpolation) so a page stays small; JPEG
    (``quality``) keeps a report of hundreds of images at a few MB.
    """
    h, w = image_rgb.shape[:2]
    if w > max_width:
        image_rgb = cv2.resize(image_rgb, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    ok, data = cv2.imencode(f".{'jpg' if fmt == 'jpeg' else 'png'}", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"could not encode the picture as {fmt.upper()}")
    return data_uri(data.tobytes(), f"image/{fmt}")
