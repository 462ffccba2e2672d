"""Plot helpers the lessons share. Every figure has a title and labelled axes."""

from __future__ import annotations

import functools

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


def show_attention(
    weights: torch.Tensor,
    ax: plt.Axes | None = None,
    query_labels: list[str] | None = None,
    key_labels: list[str] | None = None,
    title: str = "attention weights",
    xlabel: str = "key (attended to)",
    ylabel: str = "query (attending)",
    colorbar: bool = True,
) -> plt.Axes:
    """Draw an (Nq, Nk) attention matrix as a heat map: row i holds query i's weights over the keys."""
    weights = torch.as_tensor(weights).detach().float().cpu()
    if weights.ndim != 2:
        raise ValueError(f"expected an (Nq, Nk) attention matrix, got shape {tuple(weights.shape)}; "
                         f"pick one batch item and head")
    for name, labels, size in (("query_labels", query_labels, weights.shape[0]),
                               ("key_labels", key_labels, weights.shape[1])):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} has {len(labels)} labels but the matrix has {size} along that axis")
    ax = ax or plt.gca()
    im = ax.imshow(weights.numpy(), cmap="viridis", vmin=0, aspect="auto", interpolation="nearest")
    if query_labels is not None:
        ax.set_yticks(range(len(query_labels)), query_labels)
    if key_labels is not None:
        ax.set_xticks(range(len(key_labels)), key_labels, rotation=90)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="weight (each row sums to 1)")
    return ax


def show_patch_heatmap(
    image: torch.Tensor,
    values: torch.Tensor,
    ax: plt.Axes | None = None,
    title: str = "",
    mark: int | None = None,
    label: str = "attention weight",
    colorbar: bool = True,
) -> plt.Axes:
    """Overlay one value per patch, (N,) on a square grid, as a heat map on a (3, H, W) image; `mark` outlines patch
    `mark`."""
    from matplotlib.patches import Rectangle

    from mobilevlm_mini.patches import grid_shape

    values = torch.as_tensor(values).detach().float().cpu().flatten()
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one RGB image shaped (3, H, W), got shape {tuple(image.shape)}")
    rows, cols = grid_shape(values.numel())
    height, width = image.shape[-2:]
    ax = show_image(image, ax, title)
    im = ax.imshow(values.reshape(rows, cols).numpy(), cmap="inferno", alpha=0.6, vmin=0,
                   extent=(0, width, height, 0), interpolation="nearest")
    if mark is not None:
        if not 0 <= mark < values.numel():
            raise ValueError(f"mark must be a patch index in [0, {values.numel()}), got {mark}")
        row, col = divmod(mark, cols)
        ph, pw = height / rows, width / cols
        ax.add_patch(Rectangle((col * pw, row * ph), pw, ph, fill=False, edgecolor="cyan", linewidth=2))
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label, fraction=0.046, pad=0.04)
    return ax


def _pipeline_box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, colour: str) -> None:
    """A rounded box with centred text, for `draw_pipeline`."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4", facecolor=colour, edgecolor="0.25"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)


def _pipeline_arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], label: str = "",
                    lw: float = 1.6, color: str = "0.2", linestyle: str = "-") -> None:
    """An arrow from `start` to `end`, its label (if any) above its middle, for `draw_pipeline`."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", lw=lw, color=color, linestyle=linestyle))
    if label:
        ax.text((start[0] + end[0]) / 2, start[1] + 1.2, label, ha="center", va="bottom", fontsize=8, color="0.15")


def draw_pipeline(
    image_size: int = 336, patch_size: int = 14, vision_dim: int = 1024, llm_dim: int = 2048, reduction: int = 4,
    vision: str = "CLIP ViT-L/14", projector: str = "LDP", llm: str = "MobileLLaMA 1.4B",
    image: torch.Tensor | None = None, ax: plt.Axes | None = None,
) -> plt.Axes:
    """The whole VLM on one page: image -> patches -> ViT -> projector -> LLM -> answer, with token counts.

    The defaults are MobileVLM's real sizes; pass the course's small ones to draw the tiny model.
    """
    from mobilevlm_mini.patches import num_patches

    n_visual = num_patches(image_size, image_size, patch_size)  # N_v = H W / P^2
    if reduction <= 0 or n_visual % reduction:
        raise ValueError(f"reduction must be a positive divisor of the {n_visual} visual tokens, got {reduction}")
    side, n_kept = image_size // patch_size, n_visual // reduction
    if ax is None:
        _, ax = plt.subplots(figsize=(16, 4.2))
    ax.set(xlim=(0, 100), ylim=(0, 34))
    ax.axis("off")

    box = functools.partial(_pipeline_box, ax)

    vision_c, proj_c, llm_c, out_c = "#cfe2f3", "#fce5cd", "#d9ead3", "#eeeeee"
    y, h, w = 17, 11, 9.5
    xs = [0.5 + 17 * i for i in range(6)]
    if image is None:
        box(xs[0], y, w, h, f"image\n{image_size}×{image_size} px\n3 colour channels", vision_c)
    else:
        box(xs[0], y, w, h, "", vision_c)
        thumb = ax.inset_axes((xs[0], y + 2.4, w, h - 2.6), transform=ax.transData, zorder=3)
        thumb.imshow(to_hwc(image))
        thumb.axis("off")
        ax.text(xs[0] + w / 2, y + 0.6, f"{image_size}×{image_size} px", ha="center", fontsize=9)
    box(xs[1], y, w, h, f"cut into patches\n{patch_size}×{patch_size} px each\n{side}×{side} grid", vision_c)
    box(xs[2], y, w, h, f"vision encoder\n{vision}\n(bidirectional)", vision_c)
    kept = "keeps every token" if reduction == 1 else f"{reduction}× fewer tokens"
    box(xs[3], y, w, h, f"projector\n{projector}\n{kept}", proj_c)
    box(xs[4], y, w, h, f"language model\n{llm}\n(causal)", llm_c)
    box(xs[5], y, w, h, "answer\ntoken by token,\neach fed back in", out_c)
    box(xs[4], 1.5, w, 6.5, "question\n(text tokens)", llm_c)
    labels = [
        f"3×{image_size}×{image_size}\npixel values",
        f"{n_visual} patches\n× {patch_size * patch_size * 3} values",
        f"{n_visual} tokens\n× {vision_dim}",
        f"{n_kept} tokens\n× {llm_dim}",
        "next token",
    ]
    for x0, x1, label in zip(xs[:-1], xs[1:], labels, strict=True):
        _pipeline_arrow(ax, (x0 + w + 0.5, y + h / 2), (x1 - 0.5, y + h / 2), label)
    _pipeline_arrow(ax, (xs[4] + w / 2, 8.5), (xs[4] + w / 2, y - 0.5))
    ax.text(xs[4] + w / 2 + 1, 12.5, f"text tokens × {llm_dim}", ha="left", va="center", fontsize=8, color="0.15")
    _pipeline_arrow(ax, (xs[5] - 0.5, y + 1.5), (xs[4] + w + 0.5, y + 1.5), lw=1.2, color="0.45", linestyle="--")
    ax.set_title(
        f"{vision} → {projector} → {llm}: a {image_size}×{image_size} image becomes "
        f"{n_visual} visual tokens, the LLM reads {n_kept}",
        fontsize=11,
    )
    return ax


def show_patch_grid(
    image: torch.Tensor, patch_size: int, ax: plt.Axes | None = None, indices: bool = False, title: str = ""
) -> plt.Axes:
    """Draw a (3, H, W) image with its P x P patch grid; `indices=True` numbers patches in token order."""
    import matplotlib.patheffects as pe

    from mobilevlm_mini.patches import num_patches

    height, width = image.shape[-2:]
    num_patches(height, width, patch_size)  # raises a clear ValueError for a bad size
    rows, cols = height // patch_size, width // patch_size
    ax = show_image(image, ax, title or (f"{height}×{width} image, {patch_size}×{patch_size} patches: "
                                         f"{rows}×{cols} = {rows * cols} tokens"))
    for k in range(1, cols):
        ax.axvline(k * patch_size - 0.5, color="white", lw=0.8)
    for k in range(1, rows):
        ax.axhline(k * patch_size - 0.5, color="white", lw=0.8)
    if indices:
        size = max(5.0, min(11.0, 90 / cols))
        for n in range(rows * cols):
            r, c = divmod(n, cols)
            ax.text((c + 0.5) * patch_size - 0.5, (r + 0.5) * patch_size - 0.5, str(n), ha="center", va="center",
                    fontsize=size, color="white", path_effects=[pe.withStroke(linewidth=1.5, foreground="black")])
    return ax


def show_patch_sequence(
    image: torch.Tensor, patch_size: int, ax: plt.Axes | None = None, per_row: int | None = None, title: str = ""
) -> plt.Axes:
    """Draw an image's patches in token order (row by row, top left first), as the ViT receives them."""
    import math

    from einops import rearrange

    from mobilevlm_mini.patches import patchify

    channels = image.shape[0]
    tokens = patchify(image[None], patch_size)[0]  # (N, P*P*C)
    n = tokens.shape[0]
    per_row = per_row or n
    rows, step = math.ceil(n / per_row), patch_size + max(1, patch_size // 4)  # a white gap between patches
    canvas = torch.ones(channels, rows * step, per_row * step)
    for i, token in enumerate(tokens):
        r, c = divmod(i, per_row)
        canvas[:, r * step:r * step + patch_size, c * step:c * step + patch_size] = rearrange(
            token, "(p q c) -> c p q", p=patch_size, q=patch_size)
    ax = ax or plt.gca()
    ax.imshow(to_hwc(canvas))
    every = max(1, per_row // 8)
    ax.set_xticks([c * step + patch_size / 2 - 0.5 for c in range(0, per_row, every)],
                  [str(c) for c in range(0, per_row, every)])
    ax.set_yticks([r * step + patch_size / 2 - 0.5 for r in range(rows)],
                  [f"{r * per_row}–{min(n, (r + 1) * per_row) - 1}" for r in range(rows)])
    ax.set(title=title or f"the same image as a sequence of {n} tokens (reading order)",
           xlabel="token index" + (" within the row" if rows > 1 else ""), ylabel="tokens" if rows > 1 else "")
    return ax


def show_position_similarity(
    pos_embed: torch.Tensor,
    grid_h: int,
    grid_w: int,
    positions: list[tuple[int, int]],
    axes: list[plt.Axes] | None = None,
    label: str = "",
) -> list[plt.Axes]:
    """Cosine similarity of every grid position's embedding (N, D) to a few chosen (row, col) positions."""
    import torch.nn.functional as F
    from matplotlib.ticker import MaxNLocator

    if pos_embed.shape[0] != grid_h * grid_w:
        raise ValueError(f"expected {grid_h}x{grid_w} = {grid_h * grid_w} position embeddings, "
                         f"got {pos_embed.shape[0]}")
    outside = [(r, c) for r, c in positions if not (0 <= r < grid_h and 0 <= c < grid_w)]
    if outside:
        raise ValueError(f"positions {outside} are outside the {grid_h}x{grid_w} grid; "
                         f"rows go 0..{grid_h - 1}, columns 0..{grid_w - 1}")
    if axes is None:
        _, axes = plt.subplots(1, len(positions), figsize=(3 * len(positions), 3), squeeze=False)
        axes = axes[0]
    unit = F.normalize(pos_embed.detach().float(), dim=-1)  # (N, D)
    sims = [(unit @ unit[r * grid_w + c]).reshape(grid_h, grid_w) for r, c in positions]  # each (h, w)
    low = min(sim.min().item() for sim in sims)  # one colour scale for the whole row
    for ax, (r, c), sim in zip(axes, positions, sims, strict=False):
        image = ax.imshow(sim.numpy(), cmap="viridis", vmin=low, vmax=1)
        ax.plot(c, r, marker="*", color="red", markersize=12, markeredgecolor="white")
        ax.set(title=f"{label}\nsimilarity to ({r}, {c})".strip(), xlabel="patch column", ylabel="patch row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].figure.colorbar(image, ax=list(axes), label="cosine similarity", shrink=0.8)
    return list(axes)


def show_token_regions(
    image: torch.Tensor,
    maps: list[torch.Tensor],
    ax: plt.Axes | None = None,
    title: str = "",
    labels: list[str] | None = None,
    colours: tuple[str, ...] = ("red", "deepskyblue", "lime", "yellow"),
    threshold: float = 0.05,
) -> plt.Axes:
    """Where a few output tokens read from: one (N,) influence map per token, each in its own colour, over an image.

    Each map is scaled to its own maximum; input tokens above `threshold` of it are filled, brighter where
    stronger, and outlined. Where two regions overlap their colours add (red + blue = pink).
    """
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    from mobilevlm_mini.patches import grid_shape

    if not 1 <= len(maps) <= len(colours):
        raise ValueError(f"expected 1 to {len(colours)} maps (one colour each), got {len(maps)}")
    if labels is not None and len(labels) != len(maps):
        raise ValueError(f"got {len(labels)} labels for {len(maps)} maps; give one label per map")
    rows, cols = grid_shape(torch.as_tensor(maps[0]).numel())
    import torch.nn.functional as F

    height, width = image.shape[-2:]
    ax = show_image(0.3 + 0.6 * image, ax, title)  # a paler image, so the colours stand out
    rgb, alpha, outlines = torch.zeros(rows, cols, 3), torch.zeros(rows, cols), []
    for i, (values, colour) in enumerate(zip(maps, colours, strict=False)):
        values = torch.as_tensor(values).detach().float().cpu().reshape(rows, cols)
        values = values / values.max().clamp_min(1e-12)  # (h, w) in [0, 1]
        values = torch.where(values > threshold, 0.45 + 0.55 * values, 0.0)  # the whole region visible
        rgb += values[..., None] * torch.tensor(to_rgb(colour))
        alpha = torch.maximum(alpha, values)
        # outline: the region on a grid of 16 x 16 sub-cells per token, shrunk by i + 1 sub-cells so outlines never
        # coincide
        mask = (values > 0).float().repeat_interleave(16, 0).repeat_interleave(16, 1)
        outside = F.pad(1 - mask[None, None], (i + 1,) * 4, value=1.0)
        outlines.append((1 - F.max_pool2d(outside, 2 * i + 3, stride=1)[0, 0], colour))
    ax.imshow(torch.cat([rgb.clamp(0, 1), 0.55 * alpha[..., None]], dim=-1).numpy(),
              extent=(0, width, height, 0), interpolation="nearest")
    for inner, colour in outlines:
        if inner.any():
            ys = (torch.arange(inner.shape[0]) + 0.5) * height / inner.shape[0]  # sub-cell centres in pixels
            xs = (torch.arange(inner.shape[1]) + 0.5) * width / inner.shape[1]
            ax.contour(xs.numpy(), ys.numpy(), inner.numpy(), levels=[0.5], colors=[colour], linewidths=1.8)
    if labels is not None:
        ax.legend(handles=[Patch(color=colour, label=label) for colour, label in zip(colours, labels, strict=False)],
                  loc="lower right", fontsize=7)
    return ax


def show_loss_curves(
    curves: dict[str, tuple[list[int], list[float]]], ax: plt.Axes | None = None,
    title: str = "Language-model loss", xlabel: str = "training step",
) -> plt.Axes:
    """Cross-entropy curves {name: (steps, losses in nats/token)}, with perplexity = e^loss on the right axis."""
    import numpy as np

    if not curves:
        raise ValueError("give at least one curve as {name: (steps, losses)}")
    ax = ax or plt.gca()
    for name, (xs, losses) in curves.items():
        if len(xs) != len(losses):
            raise ValueError(f"curve {name!r} has {len(xs)} steps but {len(losses)} losses")
        ax.plot(xs, losses, label=name, marker="o" if len(xs) < 30 else None, markersize=3)
    ax.set(title=title, xlabel=xlabel, ylabel="cross-entropy (nats / token)")
    ax.set_ylim(bottom=0)
    perplexity = ax.secondary_yaxis("right", functions=(np.exp, lambda p: np.log(np.clip(p, 1e-12, None))))
    perplexity.set_yticks([1, 1.5, 2, 3, 5, 10, 20, 50, 100, 1000])
    perplexity.set_ylabel("perplexity = e^loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def show_gallery(images: list, texts: list[str], ncols: int = 4, title: str = "", width: float = 3.2):
    """Images (PIL, (H, W, 3) arrays or (3, H, W) tensors) in a grid, each with its text above; returns the figure."""
    if len(images) != len(texts):
        raise ValueError(f"got {len(images)} images but {len(texts)} texts; give one text per image")
    import numpy as np

    nrows = -(-len(images) // ncols)
    lines = max(text.count("\n") + 1 for text in texts)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, nrows * (width + 0.16 * lines) + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, texts, strict=False):
        ax.imshow(to_hwc(image) if isinstance(image, torch.Tensor) else np.asarray(image), interpolation="nearest")
        ax.set_title(text, fontsize=7.5, loc="left")  # a normal title, so tight_layout leaves room for every line
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_counts(counts: dict[str, int], ax: plt.Axes | None = None, title: str = "", xlabel: str = "",
                ylabel: str = "count") -> plt.Axes:
    """A bar chart of {name: count}, with the count written on each bar."""
    ax = ax or plt.gca()
    bars = ax.bar(list(counts), list(counts.values()), color="tab:blue")
    ax.bar_label(bars, fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    return ax


def show_scatter_2d(points: torch.Tensor, labels: list[str], ax: plt.Axes | None = None, title: str = "",
                    xlabel: str = "component 1", ylabel: str = "component 2",
                    palette: dict[str, str] | None = None) -> plt.Axes:
    """Points (N, 2) coloured by their label, one legend entry per label (palette: label -> matplotlib colour)."""
    if len(points) != len(labels):
        raise ValueError(f"got {len(points)} points but {len(labels)} labels")
    ax = ax or plt.gca()
    for i, name in enumerate(sorted(set(labels), key=labels.index)):
        keep = torch.tensor([label == name for label in labels])
        colour = palette[name] if palette else f"C{i}"
        ax.scatter(points[keep, 0], points[keep, 1], s=8, alpha=0.7, color=colour, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=7, markerscale=2)
    return ax


def show_spread(spreads: dict[str, dict], ax: plt.Axes | None = None, title: str = "", xlabel: str = "",
                ylabel: str = "", colors: list[str] | None = None) -> plt.Axes:
    """Bars at the median of each {name: bench.spread(...)} with the quartiles (thick) and min-max (thin) as error
    bars."""
    if not spreads:
        raise ValueError("give at least one {name: spread} entry")
    ax = ax or plt.gca()
    names, values = list(spreads), list(spreads.values())
    medians = [s["median"] for s in values]
    x = range(len(names))
    ax.bar(x, medians, color=colors or "tab:blue", alpha=0.8)
    for i, s in enumerate(values):
        ax.plot([i, i], [s["min"], s["max"]], color="black", linewidth=1)
        ax.plot([i, i], [s["q1"], s["q3"]], color="black", linewidth=4)
    # the median under each name
    ax.set_xticks(list(x), [f"{name}\n{m:.3g}" for name, m in zip(names, medians, strict=True)])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    return ax


def show_filmstrip(frames, kept: list[int] | None = None, ax: plt.Axes | None = None, title: str = "",
                   mark: int | None = None) -> plt.Axes:
    """A clip's frames (T, H, W, 3) side by side, labelled by frame index; frames not in `kept` are faded.

    mark: a frame index to flag with a red line on its left edge (e.g. the first frame after a change).
    """
    import numpy as np

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames shaped (T, H, W, 3), got {frames.shape}")
    count, height, width = frames.shape[:3]
    kept = list(range(count)) if kept is None else list(kept)
    bad = [i for i in kept if not 0 <= i < count]
    if bad:
        raise ValueError(f"kept frame indices {bad} are outside 0..{count - 1}")
    ax = ax or plt.gca()
    gap = max(1, width // 16)
    strip = np.full((height, count * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        shown = frame if i in kept else (frame * 0.25 + 255 * 0.75).astype(np.uint8)  # faded: the model does not see it
        strip[:, i * (width + gap) : i * (width + gap) + width] = shown
    ax.imshow(strip, interpolation="nearest")
    ax.set_xticks([i * (width + gap) + width / 2 for i in range(count)],
                  [f"{i}*" if i in kept else str(i) for i in range(count)])
    if mark is not None:
        ax.axvline(mark * (width + gap) - gap / 2 - 0.5, color="red", linewidth=2)
    ax.set(title=title, xlabel="frame index (* = kept)", yticks=[])
    return ax
