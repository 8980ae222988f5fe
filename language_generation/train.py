"""TOAST-tune a causal LM on instruction data through the Hugging Face ``Trainer``.

    python -m language_generation.train --config-file configs/alpaca/llama7b_toast.yaml \\
        MODEL.NAME_OR_PATH meta-llama/Llama-2-7b-hf DATA.PATH alpaca_data.json OUTPUT_DIR output/alpaca
    torchrun --nproc_per_node=4 -m language_generation.train ... TRAIN.BF16 True TRAIN.FSDP "full_shard auto_wrap"

Every ``TrainingArguments`` field is ``TRAIN.<FIELD>``. The run folder gets what the transfer method saves
(the TOAST adapter, the peft adapter of LoRA/IA3, the whole end2end model), the tokenizer and the run files
of :mod:`.run_files` (``config.yaml``, ``log.txt``, ``metrics.jsonl``, ``curves.png``, ``results.json``); re-running resumes from the newest complete
``checkpoint-*`` folder, and a folder holding another config is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed
from yacs.config import CfgNode

from runkit.cli import UserError, flags_first, user_errors
from runkit.lock import run_lock
from runkit.runs import is_main_process
from toast.summary import parameter_summary

from . import run_files as rf
from .config import check_model_name, check_precision, load_config, training_arguments_defaults
from .data import IGNORE_INDEX, build_datasets
from .distributed import barrier, check_engine_config, end_processes, gathered_state, main_decides
from .methods import TRANSFER_METHODS, TransferMethod
from .model import build_model, build_tokenizer
from .nonfinite import FiniteLossMixin, NonFiniteGuard, NonFiniteTrainingError
from .run_inputs import InputsChanged, check_run_inputs, read_inputs, record_inputs

logger = logging.getLogger(__name__)


def training_arguments(cfg: CfgNode, has_eval_split: bool = True) -> TrainingArguments:
    """``TrainingArguments`` from the fields of ``cfg.TRAIN`` that differ from transformers' defaults."""
    library = training_arguments_defaults()
    kwargs = {key.lower(): value for key, value in cfg.TRAIN.items() if value != library[key]}
    kwargs.setdefault("seed", cfg.SEED)
    if not has_eval_split:
        kwargs["eval_strategy"] = "no"
    return TrainingArguments(output_dir=cfg.OUTPUT_DIR, **kwargs)


def start_distributed_world(args: TrainingArguments) -> None:
    """Sets up the processes before the model is built, as the ``transformers`` examples order it: ZeRO-3's
    ``from_pretrained`` partitions the weights as it loads them, reading the world size from
    ``deepspeed.comm``, which ``TrainingArguments`` leaves unstarted on the CPU."""
    args.device  # noqa: B018  (the property starts torch.distributed under torchrun)
    if args.deepspeed:
        import deepspeed

        deepspeed.init_distributed()


class ToastTrainer(FiniteLossMixin, Trainer):
    """The ``Trainer`` for any registered method: a method that saves its own tensors (``own_tensors``, as TOAST
    its adapter) is saved and resumed through them, never as a copy of the base model; the others as the
    ``Trainer`` saves a model.

    Args:
        method: the transfer method of the model that trains.
    """

    def __init__(self, *args, method: TransferMethod, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.method = method

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """A method's own tensors are gathered by every process from whatever the engine holds (ZeRO-3 partitions,
        FSDP2 shards: only these tensors, so no engine setting about gathering the whole model matters) and
        written by the main process alone; every process returns once the files exist, so that none reads the
        folder (a reload, a resume) while the main process is writing it."""
        if self.method.own_tensors is None:
            return super().save_model(output_dir, _internal_call)
        self._save_own_tensors(output_dir)
        barrier()

    def _run_epoch(self, *args, **kwargs):
        """The library's, but never past the last step: a run resumed from its final checkpoint (killed before
        ``results.json``) would otherwise train one step beyond ``TRAIN.MAX_STEPS`` when that ends mid-epoch (the
        loop checks the step count only after a step)."""
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def _save_checkpoint(self, model, trial) -> None:
        """The library's, with a full disk named as such (torch says only "unexpected pos")."""
        with rf.run_writes(Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"):
            super()._save_checkpoint(model, trial)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if self.method.own_tensors is None:
            return super()._save(output_dir, state_dict)
        self._save_own_tensors(output_dir)

    def _save_own_tensors(self, output_dir: str | None) -> None:
        """Every process gathers (a collective), the main process writes."""
        model = self.accelerator.unwrap_model(self.model)
        state = gathered_state(self.method.own_tensors.state(model))
        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.method.own_tensors.write(model, Path(output_dir), state)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, rf.TRAINING_ARGS))

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """The library's, plus the real (unpadded) tokens of the whole optimizer step, over all processes as
        ``num_items_in_batch`` is: the reconstruction loss is divided by them (see :meth:`compute_loss`)."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._tokens_in_step = None
        if batch_samples and "input_ids" in batch_samples[0]:
            count = sum(
                (b["attention_mask"] if "attention_mask" in b else torch.ones_like(b["input_ids"])).sum()
                for b in batch_samples
            ).to(device)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                count = self.accelerator.gather(count).sum()
            self._tokens_in_step = count
        return batch_samples, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The head runs only where a label is supervised (:func:`supervised_logits_only`). In training
        (``num_items_in_batch`` given), a model that asks for it (``needs_tokens_in_step``: TOAST with a
        reconstruction loss) also gets the step's real-token count (``tokens_in_step``)."""
        unwrapped = self.accelerator.unwrap_model(model)
        if not return_outputs and accepts_logits_to_keep(unwrapped):
            inputs = supervised_logits_only(inputs)
        tokens = getattr(self, "_tokens_in_step", None)
        if num_items_in_batch is not None and tokens is not None and getattr(unwrapped, "needs_tokens_in_step", False):
            inputs = {**inputs, "tokens_in_step": tokens}
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """A method's own tensors back into the model (TOAST: plain tensors, or FSDP2's ``DTensor`` shards
        through ``torch.distributed.checkpoint.state_dict``, see :func:`toast.load_adapter`)."""
        if self.method.own_tensors is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.method.own_tensors.read(self.accelerator.unwrap_model(model or self.model), Path(resume_from_checkpoint))


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the causal LM (under a peft wrapper or not) takes ``logits_to_keep`` and ``shift_labels``, as the
    library's own causal LMs and :class:`ToastCausalLM` do."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def supervised_logits_only(inputs: dict) -> dict:
    """``inputs`` with ``logits_to_keep``: the positions whose next token is supervised in some row, and their
    ``shift_labels``. The loss is the same cross-entropy over the same tokens, but the head (a 49k x 576 matmul
    per position on SmolLM2, a fifth of its forward) skips the prompt and padding, which on instruction data is
    most of each row. Left as it is when every position is supervised (packed blocks) or no label is given."""
    labels = inputs.get("labels")
    if labels is None or "logits_to_keep" in inputs or "shift_labels" in inputs:
        return inputs
    shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    keep = (shifted != IGNORE_INDEX).any(0).nonzero().squeeze(1)
    if len(keep) >= labels.shape[1] - 1:  # the last position never has a next token
        return inputs
    return {**inputs, "logits_to_keep": keep, "shift_labels": shifted[:, keep].contiguous()}


def engine_name(trainer: Trainer) -> str:
    """What ran, as accelerate set it up (``TRAIN.FSDP`` on the CPU, for one, ends up as DDP)."""
    if trainer.is_deepspeed_enabled:
        stage = trainer.accelerator.state.deepspeed_plugin.zero_stage
        return f"deepspeed zero-{stage}"
    if trainer.is_fsdp_enabled:
        return f"fsdp{trainer.accelerator.state.fsdp_plugin.fsdp_version}"
    world = trainer.args.world_size
    return f"ddp ({world} processes)" if world > 1 else "one process"


def check_inputs_unchanged(out: Path, cfg: CfgNode, status: str, overwrite: bool) -> str:
    """``status``, or ``"new"`` when the run's inputs changed by content and ``overwrite`` replaces it (its
    config and log stay); without ``overwrite`` such a run is refused, naming what changed."""
    try:
        check_run_inputs(out, cfg)
    except InputsChanged as changed:
        if not overwrite:
            raise
        logger.info("--overwrite: training again from scratch (%s)", changed)
        rf.clear_run(out, keep=(rf.CONFIG, rf.LOG))
        return "new"
    return status


def train(cfg: CfgNode, overwrite: bool = False) -> dict:
    """Runs (or resumes, or reports) the run in ``cfg.OUTPUT_DIR``; returns its results.

    The main process holds the folder's lock (:func:`runkit.lock.run_lock`) from before it looks at the folder
    until the run ends, however it ends: a second run (or an ``--overwrite``) into a live run's folder is refused
    on every process."""
    check_model_name(cfg)
    check_engine_config(cfg)
    check_precision(cfg)
    args = training_arguments(cfg)
    start_distributed_world(args)
    with contextlib.ExitStack() as held:
        main_decides(lambda: held.enter_context(run_lock(cfg.OUTPUT_DIR)))
        return _train(cfg, args, overwrite)


def _train(cfg: CfgNode, args: TrainingArguments, overwrite: bool) -> dict:
    out = Path(cfg.OUTPUT_DIR)
    # run folder (language_generation.run_files): rank 0 refuses another config, clears (--overwrite), writes
    # config.yaml, checks the inputs by content and picks the newest complete checkpoint; the others wait for
    # its answer
    status = rf.start_run(cfg, overwrite)
    if status != "new":
        status = main_decides(
            lambda: status if rf.nothing_trained(out) else check_inputs_unchanged(out, cfg, status, overwrite)
        )
    if status == "finished":
        return rf.finished_results(out)
    last = main_decides(lambda: rf.resume_point(out))
    tokenizer = build_tokenizer(cfg)
    with args.main_process_first(desc="building the datasets"):  # rank 0 fills the datasets cache first
        train_set, eval_set = build_datasets(cfg, tokenizer)
    if eval_set is None:
        args = training_arguments(cfg, has_eval_split=False)
    set_seed(args.seed)  # before the model: a fresh top-down path is the same in every process and run
    model = build_model(cfg)
    if last is None and is_main_process():  # training starts from scratch: on these inputs
        record_inputs(out, cfg)
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
    trainer = ToastTrainer(
        method=TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE),
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[rf.MetricsCallback(out), NonFiniteGuard()],
    )
    start = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=last)
    except NonFiniteTrainingError as err:
        logger.error("%s", err)
        raise
    with rf.run_writes(out):
        trainer.save_model(str(out))
        trainer.save_state()
    results = {
        "train_loss": result.training_loss,
        "global_step": result.global_step,
        "trainable_params": parameter_summary(model).trainable,
        "engine": engine_name(trainer),
        "seconds": round(time.time() - start, 1),
        "resumed_from": last,
    }
    if eval_set is not None:
        metrics = trainer.evaluate()
        results["eval_loss"] = metrics["eval_loss"]
        results["perplexity"] = math.exp(metrics["eval_loss"]) if metrics["eval_loss"] < 50 else float("inf")
    if trainer.is_world_process_zero():
        results["run"] = {**rf.run_record(cfg), "inputs": read_inputs(out)}
        rf.write_results(out, results)
    barrier()  # results.json is there before any process reports the run finished
    return results


def main(
    argv: list[str] | None = None,
    defaults: list[str] = (),
    require_top_down: bool = False,
    description: str = __doc__,
) -> None:
    """The CLI; ``pretune`` reuses it with its own ``KEY VALUE`` defaults (applied before the user's) and
    ``require_top_down`` (a method with a top-down path)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run with another config in OUTPUT_DIR (anywhere on the line)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. TRAIN.MAX_STEPS 100")
    args = parser.parse_args(flags_first(argv, "--overwrite"))
    with user_errors():
        cfg = load_config(args.config_file, args.opts, defaults=defaults)
        if require_top_down and not TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).has_top_down:
            with_path = [m.name for m in TRANSFER_METHODS.in_table_order() if m.has_top_down]
            raise UserError(
                f"pre-tuning trains the top-down path; MODEL.TRANSFER_TYPE={cfg.MODEL.TRANSFER_TYPE!r} has none "
                f"(choose one of {with_path})"
            )
        results = train(cfg, overwrite=args.overwrite)
    end_processes()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
