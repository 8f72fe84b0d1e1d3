"""A training-only auxiliary head: the scene's privileged state read back from each frame's image tokens.

RT-1 learns where the named object is only through the action loss; this head asks the image tokens of every
frame to say it outright: the position of the instruction's target object and of the task's goal (where the
target should end up), both logged per frame by the simulator (`results_raw.csv`: `tar_obj_pose_x/y/z`,
`goal_pos_x/y/z`). Its loss trains the image tokenizer (FiLM-EfficientNet + TokenLearner) to ground the
instruction in the image; the policy never runs it, and checkpoints keep its weights apart from the model's
(`rt1_sim.model.auxiliary.RT1WithAuxiliaryLosses`), so a checkpoint trained with it is an ordinary RT-1
checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STATE_NAMES = ("target", "goal")  # each an (x, y, z) position, metres
STATE_SIZE = 3 * len(STATE_NAMES)
# Positions are predicted standardised: centred on the middle of the workspace, in units of 20 cm.
STATE_CENTRE = (0.5, 0.0, 0.05)
STATE_SCALE = 0.2


class StateHead(nn.Module):
    """(B, T, N, D) image tokens of each frame -> (B, T, STATE_SIZE) standardised positions."""

    def __init__(self, tokens_per_frame: int, width: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(tokens_per_frame * width),
            nn.Linear(tokens_per_frame * width, hidden),
            nn.GELU(),
            nn.Linear(hidden, STATE_SIZE),
        )
        self.register_buffer("centre", torch.tensor(STATE_CENTRE * len(STATE_NAMES)), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens.flatten(2))  # (B, T, STATE_SIZE)

    def standardise(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions in metres (..., STATE_SIZE) -> the head's units."""
        return (positions - self.centre) / STATE_SCALE

    def metres(self, predicted: torch.Tensor) -> torch.Tensor:
        """The head's output (..., STATE_SIZE) -> positions in metres."""
        return predicted * STATE_SCALE + self.centre


def state_loss(
    predicted: torch.Tensor, states: torch.Tensor, mask: torch.Tensor, head: StateHead
) -> torch.Tensor:
    """Smooth-L1 between the standardised prediction (B, T, S) and the logged states (B, T, S) in metres, over
    the entries `mask` (B, T, S) keeps (valid steps whose state was logged); 0 when it keeps none."""
    if not bool(mask.any()):
        return predicted.sum() * 0.0  # keeps the head in the graph (DDP expects every parameter used)
    return F.smooth_l1_loss(predicted[mask], head.standardise(states)[mask])
