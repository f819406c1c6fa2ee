"""Image helpers: tile a batch of [-1, 1] images into one PNG (no plotting library needed)."""

from __future__ import annotations

import math

import numpy as np


def tile(images, columns: int | None = None) -> np.ndarray:
    """(n, C, H, W) in [-1, 1] -> one uint8 (rows*H, columns*W[, C]) mosaic with 1-pixel gutters."""
    array = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=np.float64)
    n, channels, height, width = array.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.full((channels, rows * (height + 1) - 1, columns * (width + 1) - 1), -1.0)
    for index in range(n):
        r, c = divmod(index, columns)
        canvas[:, r * (height + 1):r * (height + 1) + height, c * (width + 1):c * (width + 1) + width] = array[index]
    pixels = np.clip((canvas + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return pixels[0] if channels == 1 else pixels.transpose(1, 2, 0)


def save_image_grid(images, path, scale: int = 4) -> None:
    """Write the mosaic of `images` as a PNG, upscaled `scale` times (small images stay visible)."""
    from PIL import Image

    from diffsweep.io import atomic_path

    picture = Image.fromarray(tile(images))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
