"""Train one transfer run: ``python -m visual_classification.train --config-file F [KEY VALUE ...]``.

The yacs overrides follow detectron2/VPT (``SOLVER.BASE_LR 0.01 DATA.NAME dtd``). ``OUTPUT_DIR`` is the
run's folder: re-running the same command resumes an interrupted run or reports a finished one. Several
GPUs: ``torchrun --nproc_per_node=N -m visual_classification.train ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import timm.data
import torch
from yacs.config import CfgNode

from toast import config_files

from .config import changed_keys, check_config, get_cfg
from .data import build_task_data, task_num_classes
from .data.transforms import normalization
from .engine import Trainer, seed_everything
from .engine import run_files as rf
from .engine.distributed import barrier, broadcast_object, init_distributed, is_main, local_device
from .models import build_model

logger = logging.getLogger("visual_classification.train")


def load_config(config_file: str | None, opts: list[str]) -> CfgNode:
    """Defaults ← YAML file (and its ``_BASE_``) ← ``KEY VALUE`` pairs, through the loader both halves share."""
    cfg = config_files.load_config(get_cfg(), config_file, opts)
    if cfg.SEED is None:
        raise ValueError("SEED must be an integer (runs are seeded so that they can be resumed exactly)")
    check_config(cfg)  # issue 12: value checks (epochs, batch size, fractions, choices)
    cfg.freeze()
    return cfg


def train(cfg: CfgNode, overwrite: bool = False) -> dict:
    """Runs (or resumes, or reports) the run in ``cfg.OUTPUT_DIR``; returns its results."""
    device = local_device(cfg.DEVICE)
    rank, world = init_distributed(device)
    out = Path(cfg.OUTPUT_DIR)
    config_text = cfg.dump()
    status = None
    if is_main():  # one process decides (and, with --overwrite, clears the old files)
        status = rf.check_output_dir(out, config_text, overwrite) if out.exists() else "new"
    status = broadcast_object(status)
    if status == "finished":
        results = json.loads((out / rf.RESULTS).read_text(encoding="utf-8"))
        print(
            f"{out} already holds a finished run with this config (test top-1 {results.get('test_top1')}); "
            "nothing to do"
        )
        return results
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        (out / rf.CONFIG).write_text(config_text, encoding="utf-8")
    barrier()
    rf.setup_logging(out, is_main())
    logger.info("torch %s, timm %s, device %s, world size %d", torch.__version__, timm.__version__, device, world)
    # issue 12: the console shows what differs from the defaults, not all ~80 lines
    changed = "".join(f"\n  {key}: {value}" for key, value in changed_keys(cfg).items())
    logger.info("config: full in %s; set by the config file and overrides:%s", out / rf.CONFIG, changed)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK

    seed_everything(cfg.SEED)
    num_classes = task_num_classes(cfg)
    model_cfg = cfg.clone()
    model_cfg.defrost()
    model_cfg.DATA.NUMBER_CLASSES = num_classes
    model = build_model(model_cfg)
    data = build_task_data(cfg, *normalization(cfg.DATA.NORMALIZE, model.backbone_name), world=world)

    trainer = Trainer(cfg, model, data, out, device, rank, world)
    if status == "resume":
        trainer.resume()
    results = trainer.fit()
    if is_main():
        results["run"] = rf.run_record(data.split_files, device)
        results["classes"] = data.classes  # issue 12: names indexed by label, for predict and visualize
        results["preprocessing"] = data.preprocessing
        rf.write_json(out / rf.RESULTS, results)
        logger.info(
            "results: best val top-1 %s at epoch %s; test top-1 there %s; final test top-1 %s",
            *(_pct(results[k]) for k in ("best_val_top1", "best_epoch", "test_top1", "final_test_top1")),
        )
    barrier()
    return results


def _pct(value) -> str:
    return "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


def main(
    argv: list[str] | None = None, defaults: list[str] = (), require_toast: bool = False, description: str = __doc__
) -> None:
    """The CLI; ``pretune`` reuses it with its own ``KEY VALUE`` defaults (applied before the user's)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="YAML config merged over the defaults")
    parser.add_argument("--overwrite", action="store_true", help="replace a run with another config in OUTPUT_DIR")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. SOLVER.BASE_LR 0.01")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file, [*defaults, *args.opts])
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if require_toast and cfg.MODEL.TRANSFER_TYPE != "toast":
        sys.exit(f"error: pre-tuning trains A_i, B_i and p (transfer type toast), not {cfg.MODEL.TRANSFER_TYPE!r}")
    train(cfg, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
