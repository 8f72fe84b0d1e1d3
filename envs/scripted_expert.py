"""A waypoint expert for PandaPick: approach above the cube, align with its yaw, descend, close, lift, terminate.

It reads the ground truth through `PandaPickEnv.privileged_state()` and implements the same Policy protocol as every
learned policy (`reset(instruction)`, `act(obs) -> flat action`), so one rollout loop serves collection and
evaluation. Each step recomputes its command from the current state (closed loop), so optional action noise
diversifies demonstrations without derailing them.
"""

from __future__ import annotations

import numpy as np

from envs.spaces import ACTION_SIZE, ACTION_SLICES, ACTION_TABLE

_BOUNDS = {d.name: d.high for d in ACTION_TABLE}
MAX_STEP = _BOUNDS["world_vector"]  # metres per control step
MAX_TURN = _BOUNDS["rotation_delta"]  # radians per control step
HOVER = 0.10  # approach height above the cube's centre, metres
LIFT_MARGIN = 0.04  # lift this much beyond the success height


def wrap_quarter_turn(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): a cube looks the same after every 90-degree turn."""
    return (angle + np.pi / 4) % (np.pi / 2) - np.pi / 4


class ScriptedExpert:
    """Scripted pick policy reading privileged state from `env` (a PandaPickEnv or a wrapper of one).

    `noise` is the standard deviation of Gaussian noise added to the translation and yaw commands, as a fraction of
    their bounds; it is drawn from a generator seeded by (`seed`, the episode's seed), so demonstrations depend only
    on seeds, never on which worker ran them or in what order.
    """

    phases = ("approach", "descend", "close", "lift")

    def __init__(self, env, noise: float = 0.0, seed: int = 0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env.unwrapped
        self.noise = noise
        self.seed = seed
        self.reset()

    def reset(self, instruction: str | None = None) -> None:
        self.phase = "approach"
        self._closing_steps = 0
        self._rng: np.random.Generator | None = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        s = self.env.privileged_state()
        if self._rng is None:  # first step of the episode: the env has been reset by now
            self._rng = np.random.default_rng([self.seed, s["episode_seed"] or 0])
        cube, ee = s["cube_pos"], s["ee_pos"]
        yaw_error = wrap_quarter_turn(s["cube_yaw"] - s["ee_yaw"])
        grasp_z = cube[2]  # the grasp point between the fingertips goes to the cube's centre
        gripper, terminate = -1.0, 0.0

        if self.phase == "approach":
            target = cube + np.array([0.0, 0.0, HOVER])
            xy_error = np.linalg.norm(target[:2] - ee[:2])
            if xy_error < 0.008 and abs(target[2] - ee[2]) < 0.02 and abs(yaw_error) < 0.05:
                self.phase = "descend"
        if self.phase == "descend":
            target = np.array([cube[0], cube[1], grasp_z])
            if np.linalg.norm(target[:2] - ee[:2]) > 0.02:  # pushed the cube or drifted: hover again
                self.phase = "approach"
                target = cube + np.array([0.0, 0.0, HOVER])
            elif abs(ee[2] - grasp_z) < 0.006:
                self.phase = "close"
        if self.phase == "close":
            target, gripper = ee.copy(), 1.0
            self._closing_steps += 1
            if self._closing_steps >= 4:
                self.phase = "lift"
        if self.phase == "lift":
            target = np.array([ee[0], ee[1], s["cube_rest_z"] + s["lift_height"] + LIFT_MARGIN])
            gripper = 1.0
            if not s["is_grasped"]:  # slipped out: open and start over
                self.phase, self._closing_steps, gripper = "approach", 0, -1.0
                target = cube + np.array([0.0, 0.0, HOVER])
            elif s["is_success"]:
                terminate = 1.0

        move = target - ee
        turn = yaw_error if self.phase in ("approach", "descend") else 0.0
        if self.noise > 0 and self.phase in ("approach", "descend"):
            move = move + self._rng.normal(0.0, self.noise * MAX_STEP, 3)
            turn = turn + self._rng.normal(0.0, self.noise * MAX_TURN)
        action = np.zeros(ACTION_SIZE, dtype=np.float32)
        action[ACTION_SLICES["world_vector"]] = np.clip(move, -MAX_STEP, MAX_STEP)
        action[ACTION_SLICES["rotation_delta"]] = (0.0, 0.0, np.clip(turn, -MAX_TURN, MAX_TURN))
        action[ACTION_SLICES["gripper_closedness"]] = gripper
        action[ACTION_SLICES["terminate_episode"]] = terminate
        return action
