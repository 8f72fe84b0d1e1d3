"""RT-1's decoder-only transformer and its attention mask.

Per timestep the sequence is [context tokens][action tokens]; the context is the image tokens of every camera
(and proprioception tokens, if used), the action tokens are placeholders whose inputs are zeros. The mask is
the paper's: causal, and no action token attends to any action token (of its own or an earlier step), so the
logits of every action dimension of every timestep come out of ONE forward pass. The logits of action
dimension k of a step are read at the position just before that step's action token k (the last context token
for k = 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rt1_attention_mask(time_steps: int, context_tokens: int, action_tokens: int) -> torch.Tensor:
    """(L, L) bool, True where query i may attend to key j; L = time_steps * (context + action tokens)."""
    step = context_tokens + action_tokens
    length = time_steps * step
    position = torch.arange(length)
    is_action = position % step >= context_tokens  # (L,)
    causal = position[None, :] <= position[:, None]  # (L, L)
    return causal & ~(is_action[:, None] & is_action[None, :])


def action_read_positions(time_steps: int, context_tokens: int, action_tokens: int) -> torch.Tensor:
    """(time_steps * action_tokens,) long: where the logits of each step's action dimensions are read."""
    step = context_tokens + action_tokens
    starts = torch.arange(time_steps) * step + context_tokens - 1  # (T,)
    return (starts[:, None] + torch.arange(action_tokens)[None, :]).reshape(-1)  # (T * A,)


class SelfAttention(nn.Module):
    """Multi-head attention with `num_heads` heads of size `head_size` (TF's key_dim), any query subset."""

    def __init__(self, d_model: int, num_heads: int, head_size: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.head_size, self.dropout = num_heads, head_size, dropout
        self.query = nn.Linear(d_model, num_heads * head_size)
        self.key_value = nn.Linear(d_model, 2 * num_heads * head_size)
        self.out = nn.Linear(num_heads * head_size, d_model)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, D), keys (B, L, D), mask (B or 1, Q, L) bool -> (B, Q, D)."""
        b, q_len, _ = queries.shape
        q = self.query(queries).view(b, q_len, self.num_heads, self.head_size).transpose(1, 2)  # (B, H, Q, S)
        k, v = self.key_value(keys).view(b, -1, 2, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4)
        # k, v: (B, H, L, S)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None], dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, Q, S)
        return self.out(y.transpose(1, 2).reshape(b, q_len, -1))  # (B, Q, D)


class Block(nn.Module):
    """Pre-LayerNorm block: x + attention(LN(x)), then x + FF(LN(x)). The feed-forward is TF RT-1's single
    dense layer of width d_model (no hidden expansion): it is what makes the paper model 35.19M parameters."""

    def __init__(self, d_model: int, num_heads: int, head_size: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.attention = SelfAttention(d_model, num_heads, head_size, dropout)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)
        self.feed_forward = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, D), mask (B or 1, L, L) -> (B, L, D); with `rows` (Q,) only those positions: (B, Q, D)."""
        h = self.norm1(x)
        if rows is not None:
            x, mask = x[:, rows], mask[:, rows]  # (B, Q, D), (B or 1, Q, L)
        x = x + self.attention(h if rows is None else h[:, rows], h, mask)
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class Transformer(nn.Module):
    """Token embedding + learned position embedding -> blocks -> LayerNorm -> vocabulary logits."""

    def __init__(
        self,
        input_size: int,
        d_model: int,
        num_layers: int,
        num_heads: int,
        head_size: int,
        vocab_size: int,
        max_length: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(input_size, d_model)
        self.position = nn.Embedding(max_length, d_model)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, head_size, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model, eps=1e-6)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, out_positions: torch.Tensor) -> torch.Tensor:
        """tokens (B, L, input_size), mask (B or 1, L, L) bool, out_positions (K,) long -> (B, K, vocab).

        Only the K output rows are computed in the last block (nothing after it reads the others)."""
        x = self.embed(tokens) + self.position.weight[: tokens.shape[1]]  # (B, L, D)
        for block in self.blocks[:-1]:
            x = block(x, mask)
        x = self.blocks[-1](x, mask, rows=out_positions)  # (B, K, D)
        return self.head(self.norm(x))  # (B, K, vocab)
