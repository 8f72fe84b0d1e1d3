"""TokenLearner: a feature map's N spatial tokens -> a few learned weighted averages (81 -> 8 in RT-1)."""

from __future__ import annotations

import torch
from torch import nn


class TokenLearner(nn.Module):
    """LayerNorm -> MLP(D -> hidden, GELU, -> num_tokens) gives, for each output token, a softmax over the N
    input positions; each output token is that weighted average of the (un-normalised) input tokens."""

    def __init__(self, width: int, num_tokens: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_tokens),
            nn.Dropout(dropout),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, D) -> (B, num_tokens, D)."""
        weights = self.mlp(self.norm(tokens))  # (B, N, num_tokens)
        weights = weights.transpose(1, 2).softmax(dim=-1)  # (B, num_tokens, N): a distribution over positions
        return weights @ tokens  # (B, num_tokens, D)
