"""Instruction-conditioned keypoint maps: where, in each camera image, the named object, its goal and the
gripper are, read off the FiLM-EfficientNet feature map and handed to the transformer as tokens.

RT-1 learns where the instruction's object is only through the action loss, and on a few thousand scenes a
small RT-1 does not learn it at all (docs/multitask_runs.md: it reaches the named object no more often than an
instruction-blind policy). `KeypointReadout` asks for it outright, in the spirit of CLIPort's
language-conditioned attention: for each of K keypoints, a query made from the instruction scores every cell
of the feature map; the softmax over the cells is that keypoint's map. Each map gives one extra image token:
the map-weighted average of the cell features plus an embedding of the map's expected position, so the
transformer is told *where* as well as *what*. Training supervises the maps with the simulator's positions
projected into each camera (`keypoint_loss`); a policy runs the same readout, no labels needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The keypoints, in map order: NetworkConfig.keypoint_maps = K keeps the first K.
KEYPOINT_NAMES = ("target", "goal", "gripper")


def cell_centres(grid: tuple[int, int]) -> torch.Tensor:
    """(h * w, 2) (row, column) centres of the cells of an (h, w) map, in [-1, 1] (the image's edges)."""
    h, w = grid
    rows = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2.0 - 1.0
    cols = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2.0 - 1.0
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(h * w, 2)


class KeypointReadout(nn.Module):
    """(N, h * w, D) feature-map tokens and (N, E) FiLM context -> (N, K + 1, D) tokens and (N, K, h * w) map
    logits. Logit of keypoint k at a cell: <query_k(instruction), LN(feature)> / sqrt(D) plus an
    instruction-free score of the feature (e.g. "the gripper looks like this"). Token k < K: the map-weighted
    cell features plus an embedding of the map's expected position; token K, the geometry token: an
    embedding of every expected position and of every pair's offset (where the target is from the gripper,
    the goal from the target...), the quantities a policy steers by, handed over explicitly."""

    def __init__(self, width: int, context_size: int, num_maps: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.num_maps = num_maps
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.query = nn.Linear(context_size, num_maps * width)
        self.score = nn.Linear(width, num_maps)
        self.position = nn.Sequential(nn.Linear(2, width), nn.GELU(), nn.Linear(width, width))
        pairs = [(i, j) for i in range(num_maps) for j in range(i + 1, num_maps)]
        self.pairs = pairs
        geometry = 2 * (num_maps + len(pairs))  # every expected position, and every pair's offset
        self.geometry = nn.Sequential(nn.Linear(geometry, width), nn.GELU(), nn.Linear(width, width))
        self.register_buffer("centres", cell_centres(grid), persistent=False)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, cells, width = tokens.shape
        if cells != len(self.centres):
            raise ValueError(f"feature map has {cells} cells, the readout was built for {len(self.centres)}")
        features = self.norm(tokens)  # (N, P, D)
        queries = self.query(context).view(n, self.num_maps, width)  # (N, K, D)
        logits = queries @ features.transpose(1, 2) / math.sqrt(width)  # (N, K, P)
        logits = logits + self.score(features).transpose(1, 2)
        weights = logits.float().softmax(dim=-1).to(tokens.dtype)  # (N, K, P)
        where = weights @ self.centres.to(tokens.dtype)  # (N, K, 2): the expected position, in [-1, 1]
        offsets = [where[:, j] - where[:, i] for i, j in self.pairs]  # e.g. target - gripper... as (N, 2)
        geometry = self.geometry(torch.cat([where.flatten(1), *offsets], dim=1))[:, None]  # (N, 1, D)
        return torch.cat([weights @ tokens + self.position(where), geometry], dim=1), logits


def keypoint_targets(
    pixels: torch.Tensor, image_size: tuple[int, int], grid: tuple[int, int]
) -> torch.Tensor:
    """(..., 2) (row, column) pixel positions in an image of `image_size` -> (..., h * w) soft labels on the
    (h, w) feature map: the bilinear weights of the four cell centres around the point (clamped at the
    border), so a label moves smoothly with the point and its expectation over the cell centres is the point
    itself (inside the centres' span)."""
    parts = []
    for axis, (size, cells) in enumerate(zip(image_size, grid, strict=True)):
        x = (pixels[..., axis] / size * cells - 0.5).clamp(0.0, cells - 1)  # continuous cell index
        low = x.floor().clamp(max=max(cells - 2, 0))
        frac = (x - low) if cells > 1 else torch.zeros_like(x)
        one_hot = F.one_hot(low.long(), cells).to(pixels.dtype)  # (..., cells)
        shifted = F.one_hot((low.long() + 1).clamp(max=cells - 1), cells).to(pixels.dtype)
        parts.append(one_hot * (1 - frac[..., None]) + shifted * frac[..., None])
    rows, cols = parts
    return (rows[..., :, None] * cols[..., None, :]).flatten(-2)  # (..., h * w)


def keypoint_loss(
    logits: torch.Tensor,
    pixels: torch.Tensor,
    mask: torch.Tensor,
    image_size: tuple[int, int],
    grid: tuple[int, int],
) -> torch.Tensor:
    """Cross-entropy between the maps (..., K, h * w) and the soft labels of the labelled positions `pixels`
    (..., K, 2), over the entries `mask` (..., K) keeps; 0 (still in the graph) when it keeps none."""
    if not bool(mask.any()):
        return logits.sum() * 0.0  # keeps the readout in the graph (DDP expects every parameter used)
    targets = keypoint_targets(pixels[mask].float(), image_size, grid)  # (M, P)
    return -(targets * logits[mask].float().log_softmax(dim=-1)).sum(-1).mean()


def expected_pixels(logits: torch.Tensor, image_size: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """Maps (..., h * w) -> (..., 2) the expected (row, column) pixel of each map's distribution."""
    centres = cell_centres(grid).to(logits.device)  # in [-1, 1]
    where = logits.float().softmax(dim=-1) @ centres  # (..., 2)
    scale = torch.tensor(image_size, dtype=torch.float32, device=logits.device)
    return (where + 1.0) / 2.0 * scale
