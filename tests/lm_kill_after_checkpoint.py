"""``language_generation.train`` that every process leaves hard (exit 9) right after the first checkpoint
is complete, as a job killed mid-run; run under ``torchrun`` with the same arguments as the real command.

    torchrun --nproc_per_node 2 tests/lm_kill_after_checkpoint.py KEY VALUE ...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch.distributed as dist  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from language_generation import train  # noqa: E402


class KillAfterCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if dist.is_initialized():
            dist.barrier()  # every process has written its part of the checkpoint
        os._exit(9)


class KilledTrainer(train.ToastTrainer):
    def __init__(self, *args, callbacks=(), **kwargs):
        super().__init__(*args, callbacks=[*callbacks, KillAfterCheckpoint()], **kwargs)


if __name__ == "__main__":
    train.ToastTrainer = KilledTrainer
    train.main()
