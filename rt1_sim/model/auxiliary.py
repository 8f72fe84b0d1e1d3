"""RT-1 with its training losses in one module (what DDP wraps): the action loss, the state head's loss
(rt1_sim.model.state_head) and the keypoint maps' loss (rt1_sim.model.keypoints), each where the run has
it."""

from __future__ import annotations

import torch
from torch import nn

from rt1_sim.model.keypoints import keypoint_loss
from rt1_sim.model.rt1 import RT1, action_loss
from rt1_sim.model.state_head import StateHead, state_loss


class RT1WithAuxiliaryLosses(nn.Module):
    """`forward` returns the logits, the action loss, the state loss (None without a state `head`) and the
    keypoint loss (None when the network has no keypoint maps). `rt1` is the policy's network; `head` is
    saved apart from it."""

    def __init__(self, rt1: RT1, head: StateHead | None) -> None:
        super().__init__()
        self.rt1 = rt1
        self.head = head

    def forward(
        self,
        images: torch.Tensor,
        instruction: torch.Tensor,
        valid: torch.Tensor,
        target_tokens: torch.Tensor,
        batch: dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """As RT1.forward (no proprioception); `batch` holds the labels of the auxiliary losses: "states"
        (B, T, S) metres with "state_mask" (B, T, S), "keypoints" (B, T, V, K, 2) pixels with "keypoint_mask"
        (B, T, V, K)."""
        rt1 = self.rt1
        maps = None
        if rt1.keypoints is not None:
            tokens, maps = rt1.encode_window(images, instruction, valid, return_maps=True)
        else:
            tokens = rt1.encode_window(images, instruction, valid)  # (B, T, N, D)
        logits = rt1.forward_tokens(tokens, valid)
        loss = action_loss(logits, target_tokens, valid)
        aux_state = aux_keypoints = None
        if self.head is not None:
            mask = batch["state_mask"] & valid[..., None]
            aux_state = state_loss(self.head(tokens), batch["states"], mask, self.head)
        if maps is not None:
            mask = batch["keypoint_mask"] & valid[..., None, None]
            config = rt1.config
            size = (config.image_height, config.image_width)
            aux_keypoints = keypoint_loss(maps, batch["keypoints"], mask, size, config.feature_map_size)
        return logits, loss, aux_state, aux_keypoints
