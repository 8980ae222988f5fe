"""Classify images with a trained run:
``python -m visual_classification.predict --adapter RUN_DIR --images PATH [PATH ...] --output preds.csv``.

PATHs are image files or folders (searched recursively for images). The backbone, its weights, the adapter
(``best/``), the class names and the preprocessing all come from the run's own record (``config.yaml``,
``results.json``); a run config that asks for hub weights (``MODEL.PRETRAINED True``) is refused unless this
command line asks too (``--set MODEL.PRETRAINED True``): a folder someone sent does not reach the network.
Images go through the model in batches with a progress bar; the CSV has one row per image: its path, then the top-k class names and softmax scores, best first. An image that cannot be read is
skipped, named in the log and listed with its error in ``<output stem>.skipped.csv``; the rest are written.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from runkit.cli import UserError, user_errors
from runkit.files import atomic_write_text, check_output_file

from .data.splits import IMAGE_EXTENSIONS, is_hidden, report_left_out
from .engine.distributed import local_device
from .trained_run import TrainedRun, load_trained_run

logger = logging.getLogger(__name__)


def image_paths(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded (recursively, sorted, hidden folders skipped, other files reported by
    extension); missing paths are errors."""
    paths: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file() and not is_hidden(p, given))
            found = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
            if not found:
                raise FileNotFoundError(f"{given} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            report_left_out(given, [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS])
            paths += found
        elif given.is_file():
            paths.append(given)
        else:
            raise FileNotFoundError(f"{given} is neither an image file nor a folder")
    return paths


class _Images(Dataset):
    """(pixels, error) per image: an unreadable file yields a blank image and its error, so one bad file in a
    folder of thousands does not stop the job."""

    def __init__(self, paths: list[Path], run: TrainedRun) -> None:
        self.paths, self.run, self.normalize = paths, run, run.normalize
        crop = run.preprocessing["crop"]
        self.blank = torch.zeros(3, crop, crop, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        try:
            pixels, error = self.run.pixels(self.paths[index]), ""
        except OSError as err:  # load_rgb names the file and the decoder's reason
            pixels, error = self.blank, str(err)
        return self.normalize(pixels), error


@torch.no_grad()
def predict(
    run: TrainedRun, paths: list[Path], top_k: int = 5, batch_size: int = 32, device: str = "auto", workers: int = 0
) -> tuple[list[dict], list[dict]]:
    """(rows, skipped): ``[{"path", "classes": [top-k names], "scores": [softmax scores]}]`` in the order of
    ``paths`` for the images that could be read, and ``[{"path", "error"}]`` for those that could not."""
    target = local_device(device)
    model = run.model.to(target).eval()
    k = min(top_k, len(run.classes))
    loader = DataLoader(_Images(paths, run), batch_size=batch_size, shuffle=False, num_workers=workers)
    rows, skipped, done = [], [], 0
    folded = getattr(model, "folded_feedback", None)  # TOAST on a ViT: the top-down path as one matrix
    with folded() if folded is not None else contextlib.nullcontext():
        for batch, errors in tqdm(loader, desc="predict", unit="batch", dynamic_ncols=True):
            scores, labels = model(batch.to(target)).float().softmax(-1).topk(k, dim=-1)
            for score, label, error in zip(scores.cpu().tolist(), labels.cpu().tolist(), errors):
                if error:
                    logger.warning("skipped %s: %s", paths[done], error)
                    skipped.append({"path": str(paths[done]), "error": error})
                else:
                    rows.append(
                        {"path": str(paths[done]), "classes": [run.classes[i] for i in label], "scores": score}
                    )
                done += 1
    return rows, skipped


def skipped_path(output: Path) -> Path:
    """Where the unreadable images are listed: ``preds.csv`` → ``preds.skipped.csv``."""
    return output.with_name(f"{output.stem}.skipped.csv")


def skipped_csv(skipped: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "error"])
    writer.writerows([row["path"], row["error"]] for row in skipped)
    return buffer.getvalue()


def to_csv(rows: list[dict]) -> str:
    k = len(rows[0]["classes"]) if rows else 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", *[f"{field}{i}" for i in range(1, k + 1) for field in ("class", "score")]])
    for row in rows:
        cells = [x for name, score in zip(row["classes"], row["scores"]) for x in (name, f"{score:.6f}")]
        writer.writerow([row["path"], *cells])
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--adapter", required=True, help="a training run's OUTPUT_DIR (config.yaml, best/, results.json)"
    )
    parser.add_argument("--images", nargs="+", required=True, help="image files and/or folders")
    parser.add_argument("--output", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image, best first (default 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0, help="data-loader workers")
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override the run's config (repeatable); settings that reach the network, such as MODEL.PRETRAINED "
        "True, are honoured only when given here",
    )
    args = parser.parse_args(argv)
    with user_errors():
        if args.top_k < 1 or args.batch_size < 1:
            raise UserError(f"--top-k {args.top_k} and --batch-size {args.batch_size} must both be >= 1")
        check_output_file(args.output, "predictions.csv")  # before the model loads and the images run
        run = load_trained_run(Path(args.adapter), [x for pair in args.set for x in pair])
        paths = image_paths(args.images)
        rows, skipped = predict(run, paths, args.top_k, args.batch_size, args.device, args.num_workers)
        output = Path(args.output)
        stale = skipped_path(output)
        if not rows:
            atomic_write_text(stale, skipped_csv(skipped))
            raise UserError(f"none of the {len(skipped)} image(s) could be read; reasons in {stale}")
        atomic_write_text(output, to_csv(rows))
        if skipped:
            atomic_write_text(stale, skipped_csv(skipped))
        elif stale.is_file():
            stale.unlink()  # written for other images: it does not describe this CSV
    print(
        f"written: {args.output} ({len(rows)} images, top-{min(args.top_k, len(run.classes))} of {len(run.classes)} classes)"
        + (f"; {len(skipped)} unreadable image(s) skipped, listed in {stale}" if skipped else "")
    )


if __name__ == "__main__":
    main()
