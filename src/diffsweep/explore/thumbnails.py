"""Small PNG pictures of a run's stored samples for the explorer, as data: URIs. 2-D samples as a
density image (dark) over the exact reference set's (light grey), on the reference's extent; image
samples as a mosaic of the first 16; an image restoration's stored strip (truth, measurement,
restorations) scaled down. Read from the run's archive, checked against its record."""

from __future__ import annotations

import base64
import io as bytes_io
import logging

import numpy as np

from diffsweep import io, runs

log = logging.getLogger("diffsweep")

PIXELS = 96          # a 2-D thumbnail's side; an image mosaic is scaled to at most this x 2
MOSAIC = 16          # images in a mosaic
# The arrays of a run's samples.npz that hold its samples: a generation run's (n, ...), a
# restoration's (measurements, n, ...) of which the first measurement is shown.
SAMPLE_ARRAYS = ("x", "samples")
STRIP = "strip.png"   # an image restoration's picture (runs/restoration.py), preferred where a run has one
STRIP_PIXELS = 320    # a strip's width at most


def thumbnail(results, run_id: str, data_id: str | None, states: dict) -> str | None:
    """The data: URI of a PNG of the run's samples, or None (logged) when it kept none or they
    cannot be read or drawn. A run that stored a strip (an image restoration: truth, measurement,
    restorations) is shown by its strip."""
    try:
        return png_uri(np.asarray(_image(runs.read_run_file(results, run_id, STRIP, states))))
    except runs.NoSamples:
        pass
    except (runs.CorruptRecord, OSError) as error:      # OSError: PIL's "cannot identify image file"
        log.warning("explorer: no thumbnail of run %s: %s", run_id, error)
        return None
    try:
        arrays = runs.read_run_arrays(results, run_id, states=states)
    except (runs.CorruptRecord, runs.NoSamples) as error:
        log.warning("explorer: no thumbnail of run %s: %s", run_id, error)
        return None
    name = next((n for n in SAMPLE_ARRAYS if n in arrays), None)
    if name is None:
        log.warning("explorer: no thumbnail of run %s: its samples.npz holds none of %s", run_id, SAMPLE_ARRAYS)
        return None
    x = arrays[name] if name == SAMPLE_ARRAYS[0] else arrays[name][0]
    if x.ndim == 2 and x.shape[1] == 2:
        picture = density(x, _reference(results, data_id))
    elif x.ndim == 4:
        picture = mosaic(x[:MOSAIC])
    else:
        return None     # other shapes (higher-dimensional vectors) have no picture
    return png_uri(picture)


def _image(data: bytes):
    from PIL import Image

    return Image.open(bytes_io.BytesIO(data)).convert("RGB")


def _reference(results, data_id: str | None):
    path = f"{results}/data/{data_id}/reference.npz"
    try:
        return io.read_arrays(path)["x"] if data_id else None
    except (OSError, ValueError, KeyError):
        return None


def density(x: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """An RGB (PIXELS, PIXELS, 3) picture: the reference's histogram in grey, the samples' in blue,
    on the reference's 0.1%-99.9% extent (the samples' if there is no reference) plus 15%."""
    x = x[np.isfinite(x).all(axis=1)]
    basis = reference if reference is not None and len(reference) else x
    basis = basis[np.isfinite(basis).all(axis=1)] if len(basis) else np.zeros((1, 2))
    low, high = np.quantile(basis, [0.001, 0.999], axis=0) if len(basis) else (np.full(2, -1.0), np.full(2, 1.0))
    pad = 0.15 * (high - low) + 1e-9
    edges = [np.linspace(low[i] - pad[i], high[i] + pad[i], PIXELS + 1) for i in range(2)]
    picture = np.full((PIXELS, PIXELS, 3), 255.0)
    for points, colour in ((reference, (190, 190, 190)), (x, (31, 90, 180))):
        if points is None or not len(points):
            continue
        counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=edges)
        shade = np.clip(counts / max(1.0, np.quantile(counts[counts > 0], 0.9)), 0, 1).T[::-1]   # y up
        picture = picture * (1 - shade[..., None]) + np.array(colour, float) * shade[..., None]
    return picture.round().astype(np.uint8)


def mosaic(images: np.ndarray) -> np.ndarray:
    from diffsweep.images import tile

    return tile(np.nan_to_num(images))


def png_uri(picture: np.ndarray) -> str:
    from PIL import Image

    image = Image.fromarray(picture)
    if max(image.size) < PIXELS:     # small images (8x8 digits) scaled up whole-pixel
        scale = PIXELS // max(image.size)
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    elif image.width > STRIP_PIXELS or image.height > 2 * PIXELS:
        image.thumbnail((STRIP_PIXELS, 2 * PIXELS))
    buffer = bytes_io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
