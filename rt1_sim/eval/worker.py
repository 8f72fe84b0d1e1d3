"""The worker side of an evaluation: each process holds one env and one policy and runs episodes by seed.

`init_worker(job)` builds them (in a spawned pool process or in the parent), `run_episode(seed)` runs one
episode through the one rollout loop and returns its row (deterministic: it depends only on the seeds) with
its timings, writing its video and staging its recording on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.spaces import CAMERA_NAMES
from rt1_sim.config import EvalConfig
from rt1_sim.data.episodes import EpisodeRecorder, stage_episode
from rt1_sim.eval.policies import GivenInstruction, PolicyChoice, policy_for_episodes
from rt1_sim.eval.video import video_frame, wants_video, write_video
from rt1_sim.policy import Policy
from rt1_sim.rollout import rollout

VIDEO_DIR = "videos"  # in the run folder
RECORD_META_KEYS = ("seed", "success", "success_once", "end_reason", "final_cube_height")


@dataclass(frozen=True)
class EvalJob:
    """Everything a worker needs (picklable): the suite, resolved policy and env options, outputs."""

    config: EvalConfig
    policy: PolicyChoice
    env_options: dict[str, Any]
    max_steps: int
    video: str
    out: str
    record: str | None
    torch_threads: int | None
    video_scale: int = 0  # camera images upscaled this many times in videos (0: auto, see video_scale_for)
    # seed -> the instruction the policy is told instead of the episode's own (language ablations);
    # None: every episode's own
    instructions: dict[int, str] | None = None


_worker: dict[str, Any] = {}  # this process's job, env and policy chooser


def init_worker(job: EvalJob, rt1: Policy | None = None) -> None:
    """Make this process's env and policy (`rt1`: an RT-1 policy already loaded by the parent)."""
    if job.torch_threads is not None:  # W workers share the cores instead of each taking all of them
        import torch

        torch.set_num_threads(job.torch_threads)
    env = gym.make(job.config.env_id, max_episode_steps=job.max_steps, **job.env_options)
    _worker.update(job=job, env=env, policy_for=policy_for_episodes(job.policy, job.config.policy, env, rt1))


def close_worker() -> None:
    """Release the env `init_worker` made in this process."""
    _worker.pop("env").close()


def run_episode(seed: int) -> dict[str, Any]:
    """One episode: {"row": its deterministic row, "sim_seconds", "policy_seconds"}."""
    job, env = _worker["job"], _worker["env"]
    variation: dict[str, Any] = {}
    frames: list[np.ndarray] = []
    recorder = EpisodeRecorder(CAMERA_NAMES) if job.record else None

    def on_step(obs: dict[str, np.ndarray], info: dict[str, Any], action: np.ndarray | None) -> None:
        if not variation:
            variation.update(env.unwrapped.variation())
        if job.video != "none":
            frames.append(video_frame(obs, len(frames), bool(info["is_success"]), job.video_scale))
        if recorder is not None:
            recorder(obs, info, action)

    policy = _worker["policy_for"](seed)
    told = job.instructions[seed] if job.instructions is not None else None
    if told is not None:
        policy = GivenInstruction(policy, told)
    result = rollout(env, policy, seed, on_step=on_step)
    video = None
    if wants_video(job.video, result.success):
        video = f"{VIDEO_DIR}/seed_{seed}.mp4"
        write_video(Path(job.out) / video, frames, fps=env.unwrapped.control_hz)
    row = {
        "seed": seed,
        "success": result.success,
        "success_once": result.success_once,
        "steps": result.steps,
        "final_cube_height": result.final_cube_height,
        "end_reason": result.end_reason,
        "instruction": result.instruction,
        "policy_instruction": result.instruction if told is None else told,
        **variation,
        "video": video,
    }
    if recorder is not None:
        meta = {**{k: row[k] for k in RECORD_META_KEYS}, "policy": job.policy.label}
        stage_episode(
            Path(job.record), CAMERA_NAMES, f"seed{seed}", recorder.episode(result.instruction, meta)
        )
    return {"row": row, "sim_seconds": result.sim_seconds, "policy_seconds": result.policy_seconds}
