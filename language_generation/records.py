"""Reading records: files (JSON list, JSONL, .txt documents) or a hub dataset, streamed record by record,
checked (errors name the file and record or line, and what was expected), and written to an Arrow file in
the ``datasets`` cache, so that memory does not grow with the corpus."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, Features, Value
from datasets.exceptions import DatasetGenerationError
from yacs.config import CfgNode

from runkit.fingerprint import file_fingerprint

from .templates import sharegpt_role

DATA_SUFFIXES = (".json", ".jsonl", ".txt")
FEATURES = {
    "alpaca": Features({"instruction": Value("string"), "input": Value("string"), "output": Value("string")}),
    "sharegpt": Features({"conversations": [{"from": Value("string"), "value": Value("string")}]}),
    "text": Features({"text": Value("string")}),
}


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a UTF-8 file; other encodings are named with the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 text ({err.reason}); save the file as UTF-8") from err


def read_raw(path: Path) -> Iterator[tuple[str, object]]:
    """``(where, record)`` pairs of one file, streamed except for a ``.json`` list (read whole)."""
    if not path.is_file():
        raise FileNotFoundError(f"DATA.PATH={str(path)!r} does not exist")
    if path.suffix == ".txt":
        block, start = [], 1
        for number, line in _lines(path):
            if line.strip():
                if not block:
                    start = number
                block.append(line.rstrip("\n"))
            elif block:
                yield f"{path}:{start}", {"text": "\n".join(block).strip()}
                block = []
        if block:
            yield f"{path}:{start}", {"text": "\n".join(block).strip()}
    elif path.suffix == ".jsonl":
        for number, line in _lines(path):
            if line.strip():
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    else:
        text = "".join(line for _, line in _lines(path))
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON at line {err.lineno} ({err.msg})") from err
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
        for number, record in enumerate(records):
            yield f"{path}: record {number}", record


def checked_record(record: object, fmt: str, where: str) -> dict:
    """The record's fields for ``fmt`` (others dropped, Alpaca's ``input`` defaulting to ""), or an error
    naming the record and what was expected."""
    if not isinstance(record, dict):
        raise ValueError(f"{where} is a {type(record).__name__}, expected an object")
    required = {"alpaca": ("instruction", "output"), "sharegpt": ("conversations",), "text": ("text",)}[fmt]
    missing = [f for f in required if f not in record]
    if missing:
        raise ValueError(f"{where} lacks {missing} (DATA.FORMAT {fmt} needs {list(required)})")
    if fmt == "sharegpt":
        return {"conversations": checked_turns(record, where)}
    fields = {"alpaca": ("instruction", "input", "output"), "text": ("text",)}[fmt]
    out = {}
    for field in fields:
        value = record.get(field, "")
        if value is None and field == "input":
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {field!r} is {type(value).__name__}, expected a string")
        out[field] = value
    return out


def checked_turns(record: dict, where: str) -> list[dict]:
    """A ShareGPT record's turns, each role known (:data:`.templates.SHAREGPT_ROLES`; an unknown one is named
    with the record), system turns only before the conversation starts; a top-level ``system`` string becomes
    the leading system turn."""
    turns = record["conversations"]
    if not isinstance(turns, list):
        raise ValueError(f"{where}: 'conversations' is {type(turns).__name__}, expected a list of turns")
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise ValueError(f"{where}: field 'system' is {type(system).__name__}, expected a string")
    out = [{"from": "system", "value": system}] if system else []
    started = False
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str):
            raise ValueError(f"{where}: turn {i} must be an object with a string 'from' (human | gpt | system ...)")
        if not isinstance(turn.get("value"), str):
            raise ValueError(f"{where}: turn {i} ('from': {turn['from']!r}) needs a string 'value'")
        role = sharegpt_role(turn["from"], f"{where}: turn {i}")
        if role == "system" and started:
            raise ValueError(
                f"{where}: turn {i} is a system turn inside the conversation; only leading system turns "
                "(the record's system prompt) can be rendered"
            )
        started = started or role != "system"
        out.append({"from": turn["from"], "value": turn["value"]})
    return out


def _generate_records(files: list[str], fmt: str, limit: int, stamp: str) -> Iterator[dict]:
    """The generator ``Dataset.from_generator`` runs (``stamp`` only makes the cache key change with the files)."""
    count = 0
    for file in files:
        for where, record in read_raw(Path(file)):
            if limit and count >= limit:
                return
            yield checked_record(record, fmt, where)
            count += 1


def data_files(path_text: str) -> list[Path]:
    """The files ``DATA.PATH`` names (a file, or the data files of a folder); [] for a hub dataset name."""
    if not path_text:
        raise ValueError("DATA.PATH is empty: give an Alpaca/ShareGPT JSON(L) file, a folder or a hub dataset name")
    path = Path(path_text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"DATA.PATH={path_text!r} holds no .json, .jsonl or .txt files")
        return files
    if path.suffix in DATA_SUFFIXES or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"DATA.PATH={path_text!r} does not exist")
        return [path]
    return []


def files_stamp(files: list[Path]) -> str:
    """The identity of the files' current contents (path and content hash), which keys the Arrow cache: a file
    rewritten with the same size and its mtime restored (``cp -p``, ``rsync -t``) is read again. The hashes are
    memoised by :mod:`runkit.fingerprint`, so unchanged files are not re-read."""
    stamps = [(str(f.resolve()), file_fingerprint(f)) for f in files]
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]


def _generate_hub_records(name: str, fmt: str, limit: int, cache_dir: str | None) -> Iterator[dict]:
    """The first ``limit`` records of a hub dataset's train split, streamed (only what is read is fetched)."""
    from datasets import load_dataset

    stream = load_dataset(name, split="train", streaming=True, cache_dir=cache_dir)
    for number, record in enumerate(stream.take(limit)):
        yield checked_record(record, fmt, f"hub dataset {name}: record {number}")


def _to_arrow(generator, kwargs: dict, fmt: str, cache_dir: str | None) -> Dataset:
    """The generator's records written to an Arrow file in the cache (reused while ``kwargs`` are the same)."""
    fingerprint = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode()).hexdigest()[:16]
    try:
        return Dataset.from_generator(
            generator, features=FEATURES[fmt], gen_kwargs=kwargs, cache_dir=cache_dir, fingerprint=fingerprint
        )
    except DatasetGenerationError as err:  # our own message (file, record, what was expected) is the cause
        raise (err.__cause__ or err) from None


_LAYOUTS = {
    "alpaca": "a JSON list or JSONL of {instruction, input, output} records",
    "sharegpt": "a JSON list or JSONL of {conversations: [...]} records",
    "text": "{text} records, or a .txt file of blank-line separated documents",
}


def _no_records(source: str, fmt: str) -> str:
    """The message for data that holds no record at all (empty or blank files), instead of the ``datasets``
    library's 'Instruction "train" corresponds to no data!'."""
    return f"{source} holds no records: it is empty or blank (DATA.FORMAT {fmt} reads {_LAYOUTS[fmt]})"


def load_records(cfg: CfgNode) -> tuple[Dataset, str]:
    """Records as an Arrow dataset: files streamed into the ``datasets`` cache; a hub dataset's train split
    (streamed, when ``DATA.MAX_RECORDS`` limits it, so that 200,000 OpenWebText documents do not need the
    whole corpus on disk); at most ``DATA.MAX_RECORDS`` of them when that is set."""
    fmt, limit, name = cfg.DATA.FORMAT, cfg.DATA.MAX_RECORDS, cfg.DATA.PATH
    files = data_files(name)
    cache_dir = cfg.DATA.CACHE_DIR or None
    if files:
        kwargs = {"files": [str(f) for f in files], "fmt": fmt, "limit": limit, "stamp": files_stamp(files)}
        try:
            return _to_arrow(_generate_records, kwargs, fmt, cache_dir), name
        except ValueError:
            if next(_generate_records(kwargs["files"], fmt, 1, ""), None) is None:
                raise ValueError(_no_records(f"DATA.PATH={name!r} ({', '.join(map(str, files))})", fmt)) from None
            raise
    if limit:
        kwargs = {"name": name, "fmt": fmt, "limit": limit, "cache_dir": cache_dir}
        try:
            return _to_arrow(_generate_hub_records, kwargs, fmt, cache_dir), name
        except ValueError:
            if next(_generate_hub_records(name, fmt, 1, cache_dir), None) is None:
                raise ValueError(_no_records(f"DATA.PATH={name!r} (hub dataset)", fmt)) from None
            raise
    from datasets import load_dataset

    records = load_dataset(name, split="train", cache_dir=cache_dir)
    needed = list(FEATURES[fmt])
    missing = [c for c in needed if c not in records.column_names and c != "input"]
    if missing:
        raise ValueError(f"hub dataset {name}: no column {missing} (DATA.FORMAT {fmt}; has {records.column_names})")
    return records.select_columns([c for c in needed if c in records.column_names]), name
