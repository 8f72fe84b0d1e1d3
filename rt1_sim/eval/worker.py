"""The worker side of an evaluation: each process holds `envs_per_worker` envs and one policy for them and
runs episodes by seed.

`init_worker(job)` builds them (in a spawned pool process or in the parent), `run_episodes(seeds)` runs a
chunk of episodes through the one rollout loop, up to one per env at a time, and returns their rows
(deterministic: each depends only on its seeds) with their timings, writing videos and staging recordings on
the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from envs.spaces import CAMERA_NAMES
from rt1_sim.config import EvalConfig
from rt1_sim.data.episodes import EpisodeRecorder, stage_episode
from rt1_sim.eval.policy_choice import PolicyChoice, load_rt1, policy_for_episodes
from rt1_sim.eval.results import METRIC_PREFIX
from rt1_sim.eval.video import video_frame, wants_video, write_video
from rt1_sim.policy import SharedBatch, TellInstead
from rt1_sim.rollout import EachEnv, EpisodeResult, StepCallback, rollouts
from rt1_sim.run_layout import VIDEO_DIR

if TYPE_CHECKING:
    from rt1_sim.policy import RT1Policy

RECORD_META_KEYS = ("seed", "success", "success_once", "end_reason")


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
    envs_per_worker: int = 1  # envs stepped together by each worker (RT-1: one batched forward for all)


_worker: dict[str, Any] = {}  # this process's job, envs and their policy


def init_worker(job: EvalJob, rt1: RT1Policy | None = None) -> None:
    """Make this process's `job.envs_per_worker` envs and their policy (`rt1`: an RT-1 policy already loaded
    by the parent): RT-1 acts for all of them in one batch; the scripted expert (one per env) and the random
    policy act per env."""
    if job.torch_threads is not None:  # W workers share the cores instead of each taking all of them
        import torch

        torch.set_num_threads(job.torch_threads)
    envs = [
        gym.make(job.config.env_id, max_episode_steps=job.max_steps, **job.env_options)
        for _ in range(job.envs_per_worker)
    ]
    if job.policy.kind == "rt1":
        policy: Any = SharedBatch(
            rt1 if rt1 is not None else load_rt1(job.policy.checkpoint, job.config.policy)
        )
    else:
        policy = EachEnv([policy_for_episodes(job.policy, job.config.policy, env) for env in envs])
    if job.instructions is not None:
        policy = TellInstead(policy, job.instructions)
    _worker.update(job=job, envs=envs, policy=policy)


def close_worker() -> None:
    """Release the envs `init_worker` made in this process."""
    for env in _worker.pop("envs"):
        env.close()


class _Episode:
    """What one episode leaves besides its result: its variation, video frames and recording."""

    def __init__(self, job: EvalJob, env: gym.Env) -> None:
        self.job, self.env = job, env
        self.variation: dict[str, Any] = {}
        self.frames: list[np.ndarray] = []
        self.recorder = EpisodeRecorder(CAMERA_NAMES) if job.record else None

    def on_step(self, obs: dict[str, np.ndarray], info: dict[str, Any], action: np.ndarray | None) -> None:
        if not self.variation:
            self.variation.update(self.env.unwrapped.variation())
        if self.job.video != "none":
            self.frames.append(
                video_frame(obs, len(self.frames), bool(info["is_success"]), self.job.video_scale)
            )
        if self.recorder is not None:
            self.recorder(obs, info, action)


def run_episodes(seeds: Sequence[int]) -> list[dict[str, Any]]:
    """The episodes of `seeds` on this worker's envs, up to `envs_per_worker` at a time: for each, {"row":
    its deterministic row, "sim_seconds", "policy_seconds"}, in the order they end."""
    job, envs = _worker["job"], _worker["envs"]
    episodes: dict[int, _Episode] = {}

    def on_step_for(slot: int, seed: int) -> StepCallback:
        episodes[seed] = _Episode(job, envs[slot])
        return episodes[seed].on_step

    results = rollouts(envs, _worker["policy"], seeds, on_step_for=on_step_for)
    return [_outcome(job, result, episodes.pop(result.seed)) for result in results]


def _outcome(job: EvalJob, result: EpisodeResult, episode: _Episode) -> dict[str, Any]:
    """An ended episode's row (its video written, its recording staged on the way) and timings."""
    seed = result.seed
    told = job.instructions[seed] if job.instructions is not None else None
    video = None
    if wants_video(job.video, result.success):
        video = f"{VIDEO_DIR}/seed_{seed}.mp4"
        write_video(Path(job.out) / video, episode.frames, fps=episode.env.unwrapped.control_hz)
    row = {
        "seed": seed,
        "success": result.success,
        "success_once": result.success_once,
        "steps": result.steps,
        **{METRIC_PREFIX + k: v for k, v in result.task_metrics.items()},
        "end_reason": result.end_reason,
        "instruction": result.instruction,
        "policy_instruction": result.instruction if told is None else told,
        **episode.variation,
        "video": video,
    }
    if episode.recorder is not None:
        meta = {
            **{k: row[k] for k in RECORD_META_KEYS},
            "task_metrics": result.task_metrics,
            "policy": job.policy.label,
        }
        stage_episode(
            Path(job.record), CAMERA_NAMES, f"seed{seed}", episode.recorder.episode(result.instruction, meta)
        )
    return {"row": row, "sim_seconds": result.sim_seconds, "policy_seconds": result.policy_seconds}
