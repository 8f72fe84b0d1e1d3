"""Scripted-expert building blocks shared by the task families: a closed-loop phase machine base class and the
pick-and-place skill most families use.

Every expert implements the Policy protocol (`reset(instruction)`, `act(obs) -> flat float32 action`), reads
ground truth through `env.unwrapped.privileged_state()` only, and recomputes its command from the current
state each step, so optional action noise (a fraction of the bounds, from a generator seeded by (seed, episode
seed)) diversifies demonstrations without derailing them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.robot import MAX_FINGER_OPENING
from envs.spaces import ACTION_SIZE, ACTION_SLICES, ACTION_TABLE

_BOUNDS = {d.name: d.high for d in ACTION_TABLE}
MAX_STEP = _BOUNDS["world_vector"]  # metres per control step
MAX_TURN = _BOUNDS["rotation_delta"]  # radians per control step
HOVER = 0.10  # approach height above an object's centre, metres
CARRY_Z = 0.17  # grasp-point height while carrying, metres: clears every object, bowl and stack
OPEN, CLOSED = -1.0, 1.0
# Close enough above the goal to lower: the arm holding an object stops short of a point about a centimetre
# away (its position control's steady error under load), and lowering steers the object the rest of the way.
CARRY_ARRIVED = 0.02  # metres (xy)
LOWER_GAIN = 0.6  # fraction of the object's xy error corrected per control step while lowering
CLOSE_STEPS = 4  # control steps of closing without a hold before lifting anyway (a miss: lift finds it)
RETRY_AFTER = 8  # control steps of retreat without success before grasping again
# A retry aims at most this far off place_pos (metres, xy) to make up for where the last try came to rest;
# a released object within SAME_HEIGHT of the goal's height came to rest on the goal's level.
MAX_AIM_CORRECTION = 0.04
SAME_HEIGHT = 0.015
RELEASE_CLEARANCE = 0.03  # metres of finger opening beyond the held object's width when letting go
# Stall watchdog: in a phase that steers to a point, this many control steps without getting PROGRESS closer
# to it than ever before in the phase means the point cannot be reached as commanded (the arm's position
# control leaves a steady error of about a centimetre under load, and a short step cannot beat it), so the
# expert moves on by its `on_stall` table instead of standing there until the time limit.
STALL_STEPS = 5
PROGRESS = 0.002  # metres (a radian of yaw error counts as YAW_METRES)
YAW_METRES = 0.05


def wrap_period(angle: float, period: float) -> float:
    """Wrap to [-period/2, period/2); period 0 (a cylinder: every yaw grasps) gives 0."""
    if period <= 0:
        return 0.0
    return float((angle + period / 2) % period - period / 2)


def make_action(move: np.ndarray, turn: float, gripper: float, terminate: float) -> np.ndarray:
    """The flat action of a translation (metres) and a yaw turn (radians), each clipped to its bounds."""
    action = np.zeros(ACTION_SIZE, dtype=np.float32)
    action[ACTION_SLICES["world_vector"]] = np.clip(move, -MAX_STEP, MAX_STEP)
    action[ACTION_SLICES["rotation_delta"]] = (0.0, 0.0, np.clip(turn, -MAX_TURN, MAX_TURN))
    action[ACTION_SLICES["gripper_closedness"]] = gripper
    action[ACTION_SLICES["terminate_episode"]] = terminate
    return action


class Expert:
    """Base of the phase-machine experts: seeding, noise and the action format. Subclasses set `phases[0]` and
    implement `plan(state) -> (target xyz, yaw error, gripper, terminate)`. `act` returns the command with
    noise (what moves the robot); `clean_action` keeps the same command before noise: a demonstration's label
    when noise only perturbs the states it visits (DART, `rt1-sim collect --set clean_labels=true`)."""

    phases: tuple[str, ...] = ()
    noisy_phases: tuple[str, ...] = ("approach",)
    # phase -> the phase to take when the watchdog finds it stalled; phases not named are not watched (timed
    # phases keep their own counters)
    on_stall: dict[str, str] = {}

    def __init__(self, env, noise: float = 0.0, seed: int = 0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env.unwrapped
        self.noise = noise
        self.seed = seed
        self.reset()

    def reset(self, instruction: str | None = None) -> None:
        self.clean_action: np.ndarray | None = None  # the last command before noise (see `act`)
        self.phase = self.phases[0]
        self.counter = 0  # steps spent in a timed phase (closing, releasing)
        self.stalls = 0  # watchdog firings this episode
        self._rng: np.random.Generator | None = None
        self._watch_reset()

    def goto(self, phase: str) -> None:
        self.phase, self.counter = phase, 0
        self._watch_reset()

    def _watch_reset(self) -> None:
        self._best, self._idle = np.inf, 0

    def _watch(self, target: np.ndarray, ee: np.ndarray, turn: float) -> None:
        """Count the steps since the phase last got PROGRESS nearer its point; past STALL_STEPS, re-plan."""
        if self.phase not in self.on_stall:
            return
        error = float(np.linalg.norm(target - ee)) + YAW_METRES * abs(turn)
        if error < self._best - PROGRESS:
            self._best, self._idle = error, 0
            return
        self._idle += 1
        if self._idle >= STALL_STEPS:
            self.stalls += 1
            self.goto(self.stall_phase())

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        s = self.env.privileged_state()
        if self._rng is None:  # first step of the episode: the env has been reset by now
            self._rng = np.random.default_rng([self.seed, s["episode_seed"] or 0])
        planned_in = self.phase
        target, turn, gripper, terminate = self.plan(s)
        if self.phase == planned_in:  # a phase entered during `plan` has not steered yet
            self._watch(target, s["ee_pos"], turn)
        move = target - s["ee_pos"]
        self.clean_action = make_action(move, turn, gripper, terminate)
        if self.noise > 0 and self.phase in self.noisy_phases:
            move = move + self._rng.normal(0.0, self.noise * MAX_STEP, 3)
            turn = turn + self._rng.normal(0.0, self.noise * MAX_TURN)
            return make_action(move, turn, gripper, terminate)
        return self.clean_action.copy()

    def stall_phase(self) -> str:
        """Where the watchdog sends a stalled phase (the `on_stall` table; a subclass may decide by state)."""
        return self.on_stall[self.phase]

    def plan(self, s: dict[str, Any]) -> tuple[np.ndarray, float, float, float]:
        raise NotImplementedError


class PickPlaceExpert(Expert):
    """Grasp the target across its narrow side, lift, carry above `place_pos`, lower, open, retreat upwards.

    Reads `target` (an object state: pos, yaw, grasp_symmetry, is_grasped) and, unless `lift_only`,
    `place_pos`: where the target's centre should be when released (metres). Lowering steers the object, not
    the hand, so a grasp off-centre still lands the object where it belongs. With `lift_only` (pick) it lifts
    the grasp point to the state's `lift_z` (metres), holds, and asks to terminate once the state says
    `is_success`.
    """

    phases = ("approach", "descend", "close", "lift", "carry", "lower", "release", "retreat")
    noisy_phases = ("approach", "descend", "carry")
    # Stalled above the object: go down anyway (descending re-hovers if the object is not below); blocked on
    # the way down: close where it is (a miss is found by the lift); short of the carry height or of the spot
    # above the goal: carry on / lower from there (lowering steers the object itself, and lets go after its
    # own count of steps when blocked).
    on_stall = {"approach": "descend", "descend": "close", "lift": "carry", "carry": "lower"}
    lift_only = False

    def reset(self, instruction: str | None = None) -> None:
        super().reset(instruction)
        self.aim_correction = np.zeros(3)  # added to place_pos after a miss (see the retreat phase)

    def plan(self, s: dict[str, Any]) -> tuple[np.ndarray, float, float, float]:
        obj, ee = s["target"], s["ee_pos"]
        yaw_error = wrap_period(obj["yaw"] - s["ee_yaw"], obj["grasp_symmetry"])
        if self.phase in ("approach", "descend"):
            return self._reach(obj, ee, yaw_error)
        if self.phase == "close":
            # The fingers close within one control step; lift as soon as they hold the object. Standing still
            # any longer would show a learner the same frame labelled "stay" and "lift": a fixed point it
            # never leaves.
            self.counter += 1
            if not (self.counter > 1 and obj["is_grasped"]) and self.counter <= CLOSE_STEPS:
                return ee.copy(), 0.0, CLOSED, 0.0
            self.goto("lift")
        if self.phase in ("lift", "carry", "lower") and not obj["is_grasped"]:  # slipped out: start over
            self.goto("approach")
            return self._reach(obj, ee, yaw_error)
        return self._transport(s, obj, ee)

    def _reach(self, obj: dict[str, Any], ee: np.ndarray, yaw_error: float):
        """Hover above the object aligned with it, then descend so the grasp point meets its centre."""
        pos = obj["pos"]
        if self.phase == "approach":
            target = pos + np.array([0.0, 0.0, HOVER])
            aligned = abs(yaw_error) < 0.05
            if np.linalg.norm(target[:2] - ee[:2]) < 0.008 and abs(target[2] - ee[2]) < 0.02 and aligned:
                self.goto("descend")
            return target, yaw_error, OPEN, 0.0
        target = pos.copy()
        if np.linalg.norm(target[:2] - ee[:2]) > 0.02:  # pushed the object or drifted: hover again
            self.goto("approach")
            return pos + np.array([0.0, 0.0, HOVER]), yaw_error, OPEN, 0.0
        if abs(ee[2] - pos[2]) < 0.006:
            self.goto("close")
        return target, yaw_error, OPEN, 0.0

    def _transport(self, s: dict[str, Any], obj: dict[str, Any], ee: np.ndarray):
        offset = ee - obj["pos"]  # grasp point relative to the object's centre
        if self.phase == "lift":
            if self.lift_only:
                done = s["is_success"]
                return np.array([ee[0], ee[1], s["lift_z"]]), 0.0, CLOSED, float(done)
            if ee[2] > CARRY_Z - 0.02:
                self.goto("carry")
            return np.array([ee[0], ee[1], CARRY_Z]), 0.0, CLOSED, 0.0
        place = s["place_pos"] + self.aim_correction
        if self.phase == "carry":
            target = np.array([place[0] + offset[0], place[1] + offset[1], CARRY_Z])
            if np.linalg.norm(target[:2] - ee[:2]) < CARRY_ARRIVED:
                self.goto("lower")
            return target, 0.0, CLOSED, 0.0
        if self.phase == "lower":
            self.counter += 1
            # Steer the object, not the hand; a gain below 1 keeps a swinging grasp from oscillating.
            error = place - obj["pos"]
            target = ee + np.array([LOWER_GAIN * error[0], LOWER_GAIN * error[1], error[2]])
            near = abs(obj["pos"][2] - place[2]) < 0.008 and np.linalg.norm(obj["pos"][:2] - place[:2]) < 0.01
            if near or self.counter > 25:  # there, or blocked: let go where it is
                self.goto("release")
            return target, 0.0, CLOSED, 0.0
        release = self._release_closedness(obj)
        if self.phase == "release":  # one step to open (they open within it), then away, for the same reason
            self.goto("retreat")
            return ee.copy(), 0.0, release, 0.0
        # Retreat and wait for success to register (it ends the episode); if it does not, try again.
        self.counter += 1
        if self.counter > RETRY_AFTER:
            # The object came to rest at the goal's height but beside it (it slid): aim the next attempt that
            # much the other way, rather than repeating the same miss until the time limit. (One that fell
            # off something, a stack, says nothing about the aim.)
            miss = s["place_pos"] - obj["pos"]
            if abs(miss[2]) < SAME_HEIGHT and np.linalg.norm(miss[:2]) < MAX_AIM_CORRECTION:
                self.aim_correction[:2] = np.clip(
                    self.aim_correction[:2] + miss[:2], -MAX_AIM_CORRECTION, MAX_AIM_CORRECTION
                )
            self.goto("approach")
        return np.array([ee[0], ee[1], CARRY_Z]), 0.0, release, 0.0

    @staticmethod
    def _release_closedness(obj: dict[str, Any]) -> float:
        """Open only RELEASE_CLEARANCE wider than the object, so a finger does not sweep into a neighbour."""
        width = min(obj["size"][0], obj["size"][1])
        opening = min(width + RELEASE_CLEARANCE, 2 * MAX_FINGER_OPENING)
        return float(1.0 - 2.0 * opening / (2 * MAX_FINGER_OPENING))
