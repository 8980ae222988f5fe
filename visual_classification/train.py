"""Train one transfer run: ``python -m visual_classification.train --config-file F [KEY VALUE ...]``.

The yacs overrides follow detectron2/VPT (``SOLVER.BASE_LR 0.01 DATA.NAME dtd``). ``OUTPUT_DIR`` is the
run's folder: re-running the same command resumes an interrupted run or reports a finished one. Several
GPUs: ``torchrun --nproc_per_node=N -m visual_classification.train ...``.

Arguments and the config are checked before torch, timm and the model are imported (``--help`` and a
wrong key answer in about a second), and the data (folders, split files, labels) before the model is built.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from yacs.config import CfgNode

from runkit.cli import UserError, user_errors
from runkit.runs import is_main_process

from .config import changed_keys, load_config
from .models.transfer import TRANSFER_METHODS

logger = logging.getLogger("visual_classification.train")


def train(cfg: CfgNode, overwrite: bool = False) -> dict:
    """Runs (or resumes, or reports) the run in ``cfg.OUTPUT_DIR``; returns its results.

    Raises :class:`~visual_classification.engine.run_files.RunLocked` when another live run holds the folder.
    """
    from .engine import run_files as rf
    from .engine import run_inputs as ri
    from .engine.distributed import broadcast_object, init_distributed, local_device

    cfg, note = resolve_optimizer(cfg)
    device = local_device(cfg.DEVICE)
    rank, world = init_distributed(device)
    out = Path(cfg.OUTPUT_DIR)
    refusals = {
        e.__name__: e for e in (rf.RunLocked, rf.RunDiverged, ri.InputsChanged, FileExistsError, FileNotFoundError)
    }
    refusals["ValueError"] = ValueError
    with contextlib.ExitStack() as lock:
        status, refusal = None, None
        if is_main_process():  # one process locks the folder, decides, and clears what an earlier attempt left
            try:
                lock.enter_context(rf.run_lock(out))  # one live run per folder
                status = _status(out, cfg, overwrite)
                if status == "diverged":
                    raise rf.diverged_error(out)
                if status == "new":
                    rf.start_clean(out)
                elif status == "resume":
                    rf.remove_stale_temp_files(out)
            except tuple(refusals.values()) as err:  # sent by name: the most specific class listed
                refusal = (next(name for name, kind in refusals.items() if isinstance(err, kind)), str(err))
        status, refusal = broadcast_object((status, refusal))
        if refusal:  # every process stops alike (a refusal on rank 0 alone would leave the others waiting)
            raise refusals[refusal[0]](refusal[1])
        if status == "finished":
            results = json.loads((out / rf.RESULTS).read_text(encoding="utf-8"))
            print(
                f"{out} already holds a finished run with this config (test top-1 {results.get('test_top1')}); "
                "nothing to do"
            )
            return results
        return _run(cfg, out, status, device, rank, world, note)


def resolve_optimizer(cfg: CfgNode) -> tuple[CfgNode, str]:
    """``SOLVER.OPTIMIZER auto`` made concrete, so that config.yaml records what ran, and a log line saying so:
    the method's own-data recipe (its registration's ``own_data_recipe``) on a user's own folder, AdamW
    otherwise (and under torchrun). Any other value is the user's choice and is kept with every other key as given."""
    if cfg.SOLVER.OPTIMIZER != "auto":
        return cfg, ""
    from .data.datasets import task_layout

    recipe = TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).own_data_recipe
    one_process = int(os.environ.get("WORLD_SIZE", "1")) == 1  # the full-batch probe runs in one process
    applies = bool(recipe) and one_process and task_layout(cfg).own_data
    chosen = dict(recipe) if applies else {"SOLVER.OPTIMIZER": "adamw"}
    resolved = cfg.clone()
    resolved.defrost()
    resolved.merge_from_list([x for key, value in chosen.items() for x in (key, value)])
    resolved.freeze()
    if not applies:
        return resolved, ""
    settings = ", ".join(f"{key} {value}" for key, value in chosen.items())
    return resolved, f"own data, {cfg.MODEL.TRANSFER_TYPE}, SOLVER.OPTIMIZER auto: {settings} (set it to choose)"


def _status(out: Path, cfg: CfgNode, overwrite: bool) -> str:
    """The folder's status, where a run to resume or report whose inputs changed by content is refused by name
    (``overwrite``: started again)."""
    from .engine import run_files as rf
    from .engine import run_inputs as ri

    status = rf.check_output_dir(out, cfg.dump(), overwrite)
    if status in ("resume", "finished"):
        try:
            ri.check_unchanged(out, ri.run_inputs(cfg), "finished" if status == "finished" else "started")
        except ri.InputsChanged:
            if not overwrite:
                raise
            status = "new"
    return status


def _run(cfg: CfgNode, out: Path, status: str, device, rank: int, world: int, note: str = "") -> dict:
    """Data checks, then the model, then training; config.yaml is written once the data passed."""
    import timm
    import torch

    from runkit.runs import setup_logging

    from .data import build_task_data, task_num_classes
    from .engine import Trainer, seed_everything
    from .engine import run_files as rf
    from .engine import run_inputs as ri
    from .engine.distributed import barrier
    from .models.build import build_model

    setup_logging(out / rf.LOG, is_main_process())
    logger.info("torch %s, timm %s, device %s, world size %d", torch.__version__, timm.__version__, device, world)
    # the console shows what differs from the defaults, not all ~80 lines
    changed = "".join(f"\n  {key}: {value}" for key, value in changed_keys(cfg).items())
    logger.info("config: full in %s; set by the config file and overrides:%s", out / rf.CONFIG, changed)
    if note:
        logger.info("%s", note)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK

    seed_everything(cfg.SEED)
    num_classes = task_num_classes(cfg)
    data = build_task_data(cfg, *_normalization(cfg), world=world)  # folders, splits, labels, before the model
    if is_main_process() and status == "new":
        ri.write_inputs(out, ri.run_inputs(cfg))  # content hashes of weights and splits, checked on resume
    if is_main_process():
        (out / rf.CONFIG).write_text(cfg.dump(), encoding="utf-8")  # the run starts here
    barrier()
    model_cfg = cfg.clone()
    model_cfg.defrost()
    model_cfg.DATA.NUMBER_CLASSES = num_classes
    model = build_model(model_cfg)

    trainer = Trainer(cfg, model, data, out, device, rank, world)
    if status == "resume":
        trainer.resume()
    try:
        results = trainer.fit()
    except FloatingPointError as err:  # recorded, so that a re-run (tune's) reports it instead of retraining
        if is_main_process():
            rf.write_json(out / rf.DIVERGED, {"error": str(err)})
        raise
    if is_main_process():
        results["run"] = rf.run_record(data.split_files, device)
        results["classes"] = data.classes  # names indexed by label, for predict and visualize
        results["preprocessing"] = data.preprocessing
        rf.write_json(out / rf.RESULTS, results)
        logger.info(
            "results: best val top-1 %s at epoch %s; test top-1 there %s; final test top-1 %s",
            *(_pct(results[k]) for k in ("best_val_top1", "best_epoch", "test_top1", "final_test_top1")),
        )
    barrier()
    return results


def _normalization(cfg: CfgNode) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std for ``DATA.NORMALIZE``, known without building the model (the data is checked first)."""
    import timm

    from .data.transforms import normalization
    from .models.backbone import backbone_name

    name = backbone_name(cfg)
    if not timm.is_model(name.split(".")[0]):
        raise ValueError(f"MODEL.BACKBONE={name!r} is not a timm model; see timm.list_models('vit_*') for ViT names")
    return normalization(cfg.DATA.NORMALIZE, name)


def _pct(value) -> str:
    return "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


def main(
    argv: list[str] | None = None, defaults: list[str] = (), pretuning: bool = False, description: str = __doc__
) -> None:
    """The CLI; ``pretune`` reuses it with its own ``KEY VALUE`` defaults (applied before the user's) and
    ``pretuning`` (the method must be one whose registration says that pre-tuning trains it)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="YAML config merged over the defaults")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run with another config in OUTPUT_DIR (anywhere on the line)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. SOLVER.BASE_LR 0.01")
    args = parser.parse_args(pop_flag(list(sys.argv[1:] if argv is None else argv), "--overwrite"))
    with user_errors():
        cfg = load_config(args.config_file, [*defaults, *args.opts])
        if pretuning and not TRANSFER_METHODS.lookup(cfg.MODEL.TRANSFER_TYPE).pretunes:
            able = sorted(m.name for m in TRANSFER_METHODS.values() if m.pretunes)
            raise UserError(
                f"pre-tuning trains A_i, B_i and p (transfer type {' or '.join(able)}), "
                f"not {cfg.MODEL.TRANSFER_TYPE!r}"
            )
        from .engine.run_files import RunLocked

        try:
            train(cfg, overwrite=args.overwrite)
        except (RunLocked, FloatingPointError) as err:  # another live run in the folder; a diverged run
            raise UserError(str(err)) from err


def pop_flag(argv: list[str], flag: str) -> list[str]:
    """``argv`` with ``flag`` moved to the front wherever it stood (argparse's REMAINDER would take it as a value)."""
    if flag not in argv:
        return argv
    return [flag, *(a for a in argv if a != flag)]


if __name__ == "__main__":
    main()
