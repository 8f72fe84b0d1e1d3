"""`rt1-sim train`: the RT-1 training loop.

    rt1-sim train --config train_configs/cpu.json [--set key.path=value ...]
    torchrun --nproc_per_node=K -m rt1_sim.train --config ...        (DDP: gloo on CPU, NCCL on GPU)
    python -m torch.distributed.launch --nproc_per_node=K --use_env -m rt1_sim.train --config ...  (IO's)

AdamW + CosineAnnealingWarmRestarts (stepped per epoch as in IO, or per step), gradient clipping, autocast on
GPU, validation every `val_interval` epochs (cross-entropy, per-dimension token accuracy, action MAE in action
units), atomic checkpoints from which a run resumes at the next step with the same data order, augmentation
and RNG streams. Everything goes into the run folder `log_dir/<run_name>/` (`rt1_sim.run_layout`): the
resolved config, `train.log`, `metrics.csv` (and TensorBoard events when installed), checkpoints. Only rank 0
writes files.

    data.py         the dataset folders, their split, frame caches, windows, each epoch's batches
    trainer.py      the Trainer (model, optimizer, scheduler, counters) and `build`
    loop.py         `train`: the epochs, their steps, and what is due at the end of a period
    validation.py   validation metrics and the instruction / image probes
    metrics.py      metrics.csv, TensorBoard, the running train window
    checkpoints.py  `save` and `resume` (bit-exact: optimizer, scheduler, RNG streams, counters)
    run_folder.py   checks before anything is written, the run folder and its lock
    cli.py          the command line
"""

from rt1_sim.train.cli import add_arguments, main, run, select_device
from rt1_sim.train.loop import train

__all__ = ["add_arguments", "main", "run", "select_device", "train"]
