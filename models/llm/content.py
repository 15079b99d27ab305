"""Chat message content parts, and the canonical form of a request that the cache hashes.

Images travel inline as ``data:`` URLs (OpenAI's vision content parts), because local servers
(vLLM, Ollama, llama.cpp) cannot fetch our files and remote ones must not be given our paths.
The cache must not key on those base64 strings verbatim: the same pixels re-encoded by another
library version would then miss, and keys would be needlessly expensive to compute on megabytes
of text. :func:`canonical_messages` therefore replaces every image by the SHA-256 of its bytes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.images import data_uri

Message = dict[str, Any]
ContentPart = dict[str, Any]

# Formats every OpenAI-compatible vision server accepts as they are; others are re-encoded as PNG.
_PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def text_part(text: str) -> ContentPart:
    """A text content part, for messages that mix text and images."""
    return {"type": "text", "text": text}


def image_part(image: str | Path | np.ndarray | Image.Image, *, detail: str | None = None) -> ContentPart:
    """An ``image_url`` content part holding the image inline as a base64 ``data:`` URL.

    ``image`` is a file path (PNG/JPEG/WebP/GIF files are sent byte for byte, anything else is
    re-encoded as PNG), a ``uint8`` array (H×W, H×W×3 RGB or H×W×4 RGBA) or a PIL image.
    ``detail`` ("low"/"high"/"auto") is passed on for servers that honour it.
    """
    data, mime = _encode(image)
    part: ContentPart = {
        "type": "image_url",
        "image_url": {"url": data_uri(data, mime)},
    }
    if detail is not None:
        part["image_url"]["detail"] = detail
    return part


def _encode(image: str | Path | np.ndarray | Image.Image) -> tuple[bytes, str]:
    if isinstance(image, str | Path):
        data = Path(image).read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            mime = _PASS_THROUGH.get(opened.format or "")
            return (data, mime) if mime else (_png(opened), "image/png")
    if isinstance(image, np.ndarray):
        return _png(_array_to_pil(image)), "image/png"
    if isinstance(image, Image.Image):
        return _png(image), "image/png"
    raise TypeError(f"image_part takes a path, a uint8 array or a PIL image, not {type(image).__name__}")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(array)
    raise ValueError(f"image arrays must be H×W, H×W×3 or H×W×4, got shape {array.shape}")


def _png(image: Image.Image) -> bytes:
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def canonical_messages(messages: list[Message]) -> list[Message]:
    """``messages`` with every inline image replaced by ``{"sha256": …}`` of its decoded bytes.

    Remote image URLs are kept as they are (their content is not ours to hash).
    """
    canonical = copy.deepcopy(messages)
    for message in canonical:
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [_canonical_part(part) for part in content]
    return canonical


def _canonical_part(part: ContentPart) -> ContentPart:
    if part.get("type") != "image_url":
        return part
    image_url = dict(part.get("image_url") or {})
    url = str(image_url.pop("url", ""))
    if url.startswith("data:") and "," in url:
        header, payload = url.split(",", 1)
        raw = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
        image_url["sha256"] = hashlib.sha256(raw).hexdigest()
    else:
        image_url["url"] = url
    return {"type": "image_url", "image_url": image_url}


def count_images(messages: list[Message]) -> int:
    """How many image parts a request carries (for logs and reports)."""
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    )
