"""Image mosaics."""

import numpy as np
import torch

from diffsweep.images import save_image_grid, tile


def test_tile_places_each_image_and_maps_the_range():
    images = torch.stack([torch.full((1, 2, 2), -1.0), torch.full((1, 2, 2), 1.0), torch.zeros(1, 2, 2)])
    mosaic = tile(images, columns=2)
    assert mosaic.shape == (2 * 3 - 1, 2 * 3 - 1)
    assert (mosaic[:2, :2] == 0).all() and (mosaic[:2, 3:5] == 255).all() and (mosaic[3:5, :2] == 128).all()
    rgb = tile(torch.zeros(4, 3, 5, 5))
    assert rgb.shape == (11, 11, 3)


def test_save_image_grid_writes_a_png(tmp_path):
    from PIL import Image
    save_image_grid(torch.rand(7, 1, 8, 8) * 2 - 1, tmp_path / "grid.png", scale=2)
    picture = Image.open(tmp_path / "grid.png")
    assert picture.size == (2 * (3 * 9 - 1), 2 * (3 * 9 - 1))
    assert np.asarray(picture).dtype == np.uint8
