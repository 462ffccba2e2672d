"""Real photos without a download: matplotlib's sample data, or any PNG/JPEG on disk, brought to the model's size.

`to_model_size(image, size)` is the one resize of the package: `ask` (`load_image`) and the drawn split use it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib import cbook
from PIL import Image


def sample_photo_path(name: str = "grace_hopper.jpg") -> Path:
    """Path of a photo that ships with matplotlib (default: Grace Hopper, 512 x 600)."""
    return Path(cbook.get_sample_data(name, asfileobj=False))


def to_model_size(image: Image.Image, size: int) -> Image.Image:
    """Any PIL image -> the model's input: converted to RGB, centre-cropped to a square, resized (bicubic) to size."""
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """The image as it reads back after being saved as a JPEG of this quality (1-100)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as saved:
        return saved.convert("RGB")


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """Read a PNG/JPEG and bring it to the model's size (`to_model_size`): (3, size, size) in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}; give the path of a PNG or JPEG")
    with Image.open(path) as image:
        array = np.asarray(to_model_size(image, size), dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # (3, H, W)


def load_sample_photo(size: int = 224, name: str = "grace_hopper.jpg") -> torch.Tensor:
    """A matplotlib sample photo as a (3, size, size) tensor in [0, 1]."""
    return load_image(sample_photo_path(name), size)
