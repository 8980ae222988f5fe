"""FSDP2 on the CPU: a TOAST model of ``language_generation`` trained with ``fully_shard`` per decoder layer.

Through the ``Trainer`` FSDP does not run on the CPU (accelerate ignores ``TRAIN.FSDP`` there and wraps the
model in DDP), so this worker wraps the model as transformers/accelerate wrap it for FSDP2 on GPUs
(``fully_shard`` on every decoder layer, then on the whole model) and drives the project's own pieces:
``build_model`` and ``build_datasets`` from a config, ``ToastTrainer.training_step`` for each step,
``ToastTrainer.save_model`` (the adapter gathered from the ``DTensor`` shards) for checkpoints and the
result, and ``ToastTrainer._load_from_checkpoint`` (the adapter loaded back into the shards) to resume.
The optimizer's state and each process's RNG state go into the checkpoint through
``torch.distributed.checkpoint.state_dict``, as accelerate saves them for FSDP.

    torchrun --nproc_per_node 2 tests/lm_fsdp_worker.py OUT KEY VALUE ...   # FSDP2, 2 processes
    python tests/lm_fsdp_worker.py OUT KEY VALUE ...                          # 1 plain process (reference)

Writes ``OUT/result.json`` (per-step losses, whether every tensor was sharded) and ``OUT/adapter.safetensors``;
``--save-steps N`` writes ``OUT/checkpoint-N``; ``--stop-after N`` ends every process hard (exit 9) right after
that checkpoint, as a killed job; a re-run resumes from the newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import DataCollatorForSeq2Seq, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from language_generation.config import load_config  # noqa: E402
from language_generation.data import IGNORE_INDEX, build_datasets  # noqa: E402
from language_generation.distributed import end_processes  # noqa: E402
from language_generation.methods import TRANSFER_METHODS  # noqa: E402
from language_generation.model import build_model, build_tokenizer  # noqa: E402
from language_generation.toast_install import decoder_layers  # noqa: E402
from language_generation.train import ToastTrainer, training_arguments  # noqa: E402

GLOBAL_BATCH = 4


def shard(model) -> None:
    """``fully_shard`` per decoder layer, then the root (which takes the top-down module and embeddings)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in decoder_layers(model.base):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def sharded_fraction(model) -> float:
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    return sum(isinstance(p, DTensor) for p in params) / len(params)


def batches(cfg, tokenizer, steps: int, rank: int, world: int) -> list[dict]:
    """This process's share of each global batch of 4 blocks (rows in order: 1 × 4 equals 2 × 2)."""
    train_set, _ = build_datasets(cfg, tokenizer)
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
    per = GLOBAL_BATCH // world
    return [collator([train_set[GLOBAL_BATCH * step + per * rank + i] for i in range(per)]) for step in range(steps)]


def mean_over_processes(value: torch.Tensor) -> float:
    value = value.detach().float().clone()
    if dist.is_initialized():
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value.item()


def save_checkpoint(trainer, model, optimizer, folder: Path, losses: list[float]) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    trainer.save_model(str(folder))  # every process gathers; rank 0 writes
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    optim_state = get_optimizer_state_dict(model, optimizer, options=options) if dist.is_initialized() else None
    rank = dist.get_rank() if dist.is_initialized() else 0
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(torch.get_rng_state(), folder / f"rng_{rank}.pt")
    if rank == 0:
        torch.save(optim_state if optim_state is not None else optimizer.state_dict(), folder / "optimizer.pt")
        (folder / "state.json").write_text(json.dumps({"step": len(losses), "losses": losses}))
    if dist.is_initialized():
        dist.barrier()


def resume(trainer, model, optimizer, folder: Path) -> list[float]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    trainer._load_from_checkpoint(str(folder))  # the adapter into the DTensor shards
    saved = torch.load(folder / "optimizer.pt", weights_only=True)
    if dist.is_initialized():
        set_optimizer_state_dict(model, optimizer, saved, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(saved)
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.set_rng_state(torch.load(folder / f"rng_{rank}.pt", weights_only=True))
    return json.loads((folder / "state.json").read_text())["losses"]


def run(out: Path, opts: list[str], steps: int, save_steps: int = 0, stop_after: int = 0) -> dict:
    """Trains ``steps`` steps (sharded when torch.distributed is started), resuming from a checkpoint in ``out``."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    cfg = load_config("", [*opts, "OUTPUT_DIR", str(out), "TRAIN.USE_CPU", "True"])
    tokenizer = build_tokenizer(cfg)
    data = batches(cfg, tokenizer, steps, rank, world)
    set_seed(cfg.SEED)
    model = build_model(cfg)
    if world > 1:
        shard(model)
    trainer = ToastTrainer(
        method=TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE),
        model=model,
        args=training_arguments(cfg, has_eval_split=False),
        processing_class=tokenizer,
    )
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.TRAIN.LEARNING_RATE, momentum=0.9
    )
    trainer.optimizer, trainer.current_gradient_accumulation_steps = optimizer, 1  # what train() sets up
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    losses = resume(trainer, model, optimizer, checkpoints[-1]) if checkpoints else []
    for step in range(len(losses), steps):
        loss = trainer.training_step(model, data[step])  # forward, loss (CE + R), backward
        optimizer.step()
        optimizer.zero_grad()
        losses.append(mean_over_processes(loss))
        if save_steps and (step + 1) % save_steps == 0:
            save_checkpoint(trainer, model, optimizer, out / f"checkpoint-{step + 1}", losses)
            if stop_after == step + 1:
                os._exit(9)  # killed right after a complete checkpoint
    trainer.save_model(str(out))
    result = {"losses": losses, "world_size": world, "sharded_fraction": sharded_fraction(model) if world > 1 else 0}
    if world > 1:  # the saved adapter, loaded into a fresh sharded model, gives back the same tensors
        set_seed(cfg.SEED + 1)
        fresh = build_model(cfg)
        shard(fresh)
        ToastTrainer(
            method=trainer.method, model=fresh, args=trainer.args, processing_class=tokenizer
        )._load_from_checkpoint(str(out))
        from language_generation.distributed import gathered_state

        mine, back = gathered_state(model.adapter_state_dict()), gathered_state(fresh.adapter_state_dict())
        result["reload_max_gap"] = max((mine[n] - back[n]).abs().max().item() for n in mine)
    if rank == 0:
        (out / "result.json").write_text(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--save-steps", type=int, default=0)
    parser.add_argument("--stop-after", type=int, default=0)
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    run(Path(args.out), args.opts, args.steps, args.save_steps, args.stop_after)
    end_processes()


if __name__ == "__main__":
    main()
