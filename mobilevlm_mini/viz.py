"""Plot helpers the lessons share. Every figure has a title and labelled axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def to_hwc(image: torch.Tensor):
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) numpy array for `imshow`."""
    return image.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()


def show_image(image: torch.Tensor, ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """Draw a (3, H, W) image with pixel axes."""
    ax = ax or plt.gca()
    ax.imshow(to_hwc(image))
    ax.set(title=title, xlabel="x (pixels)", ylabel="y (pixels)")
    return ax
