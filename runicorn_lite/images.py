"""Images a training script logs: what format a file is, and a tiny PNG encoder.

The format is decided by the file's first bytes, never by a name or a claim, so that what lands
in ``media/`` is served with a content type that matches it. The encoder writes 8-bit
grayscale, RGB or RGBA PNGs with zlib alone, so sample runs and uint8 arrays need no Pillow.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

# (magic test, file extension) in the order they are tried.
FORMATS = ("png", "jpg", "gif", "webp")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_PILLOW_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)


def detect_format(data: bytes) -> str | None:
    """``png``, ``jpg``, ``gif`` or ``webp`` from the magic bytes, else None."""
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    return None


def encode_png(width: int, height: int, pixels: bytes, channels: int = 3) -> bytes:
    """A PNG of ``height`` rows of ``width`` pixels, ``channels`` bytes each (1-4), row-major."""
    if channels not in _COLOR_TYPES:
        raise ValueError("channels must be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)")
    if width <= 0 or height <= 0 or len(pixels) != width * height * channels:
        raise ValueError(f"expected {width}x{height}x{channels} bytes of pixels, got {len(pixels)}")
    stride = width * channels
    # Filter type 0 (none) on every row: each row is prefixed by a zero byte.
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image_bytes(image: Any, fmt: str | None = None, quality: int = 90) -> tuple[bytes, str]:
    """``image`` as (file bytes, extension).

    ``image`` is a path to a PNG/JPEG/GIF/WebP file, the bytes of one, a Pillow image, or a
    uint8 array (H×W, H×W×1..4). ``fmt`` (``png`` by default) applies to Pillow images and
    arrays; files and bytes keep their own format. Anything else: ValueError (not an image) or
    TypeError (not a kind of value this takes).
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _checked(bytes(image), "the bytes given")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        return _checked(path.read_bytes(), str(path))
    wanted = (fmt or "png").lower()
    if wanted not in _PILLOW_FORMATS:
        raise ValueError(f"format must be one of png, jpeg, gif, webp; got {fmt!r}")
    ext = "jpg" if wanted == "jpeg" else wanted
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        return _array_bytes(image, ext, quality), ext
    if hasattr(image, "save") and hasattr(image, "mode"):
        return _pillow_bytes(image, ext, quality), ext
    raise TypeError(
        "image must be a path, bytes, a Pillow image or a uint8 array; got " + type(image).__name__
    )


def _checked(data: bytes, what: str) -> tuple[bytes, str]:
    ext = detect_format(data)
    if ext is None:
        raise ValueError(f"{what} is not a PNG, JPEG, GIF or WebP image")
    return data, ext


def _pillow_bytes(image: Any, ext: str, quality: int) -> bytes:
    if ext == "jpg" and getattr(image, "mode", "RGB") not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")  # JPEG has no alpha channel
    out = io.BytesIO()
    image.save(out, format=_PILLOW_FORMATS[ext], quality=quality)
    return out.getvalue()


def _array_bytes(array: Any, ext: str, quality: int) -> bytes:
    if str(array.dtype) != "uint8":
        raise ValueError(f"arrays must be uint8 (0-255); got {array.dtype}")
    shape = tuple(array.shape)
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if len(shape) == 2:
        height, width, channels = shape[0], shape[1], 1
    elif len(shape) == 3 and shape[2] in (2, 3, 4):
        height, width, channels = shape
    else:
        raise ValueError(f"arrays must be H×W or H×W×C with C in 1-4; got shape {tuple(array.shape)}")
    try:
        from PIL import Image
    except ImportError:
        if ext != "png":
            raise RuntimeError(
                "Pillow is needed to write arrays as anything but PNG: pip install 'runicorn-lite[images]'"
            ) from None
        return encode_png(width, height, array.tobytes(order="C"), channels)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    pil = Image.frombytes(mode, (width, height), array.tobytes(order="C"))
    return _pillow_bytes(pil, ext, quality)
