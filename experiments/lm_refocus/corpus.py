"""The real-text pre-tuning corpus, built offline from what every install of this project has: the English
docstrings of the CPython standard library that runs it (PSF licence) and of the installed packages
``PACKAGES`` (torch, transformers, datasets, numpy: BSD / Apache-2.0 licences). Docstrings of at least
``MIN_CHARS`` characters (modules, classes, functions), exact duplicates removed, and every document that
contains a target task's answer or input word (test, val or train) dropped; split into train / val by a
hash of the text, so the split does not depend on file order."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
import sysconfig
from pathlib import Path

from runkit.files import atomic_write_text

MIN_CHARS = 300
PACKAGES = ("torch", "transformers", "datasets", "numpy")


def docstrings(root: Path, skip_site_packages: bool = True) -> list[tuple[str, str]]:
    """``(file, docstring)`` for every module, class and function docstring under ``root`` (sorted files)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts)
        if (skip_site_packages and "site-packages" in parts) or parts & {"test", "tests", "testing"}:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few stdlib files are test fixtures in other encodings or syntax
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= MIN_CHARS:
                    out.append((str(path.relative_to(root)), doc.strip()))
    return out


def build_corpus(out: Path, banned: set[str], packages_read: tuple[str, ...] = PACKAGES, val_fraction: float = 0.05,
                 root: Path | None = None) -> dict:  # fmt: skip
    """Writes ``train.jsonl`` / ``val.jsonl`` (``{"text"}`` records, in the order of their hashes) and
    ``provenance.json`` under ``out``; returns the provenance (reused when it exists). ``root``: another
    folder of Python files instead of the standard library (tests)."""
    info_path = out / "provenance.json"
    if info_path.is_file():
        return json.loads(info_path.read_text())
    root = root or Path(sysconfig.get_paths()["stdlib"])
    docs = docstrings(root)
    packages = {}
    for name in packages_read:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"the pre-tuning corpus reads the docstrings of {name}, which is not installed")
        folder = Path(spec.submodule_search_locations[0])
        packages[name] = f"{importlib.metadata.version(name)} at {folder}"
        docs += docstrings(folder, skip_site_packages=False)
    seen, kept, dropped_dup, dropped_task = set(), {"train": [], "val": []}, 0, 0
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, banned))) + r")\b", re.IGNORECASE) if banned else None
    for _, text in docs:
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            dropped_dup += 1
            continue
        seen.add(digest)
        if pattern is not None and pattern.search(text):
            dropped_task += 1
            continue
        split = "val" if int(digest[:8], 16) / 16**8 < val_fraction else "train"
        kept[split].append((digest, text))
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "source": f"docstrings of the Python files at {root} (CPython {sys.version.split()[0]}), and of packages",
        "packages": packages,
        "licence": "Python Software Foundation License (stdlib); the packages' own (BSD, Apache-2.0)",
        "min_chars": MIN_CHARS,
        "documents_read": len(docs),
        "dropped_duplicates": dropped_dup,
        "dropped_containing_a_task_answer_or_input_word": dropped_task,
        "banned_words": len(banned),
    }
    for split, texts in kept.items():
        body = "".join(json.dumps({"text": t}) + "\n" for _, t in sorted(texts))
        atomic_write_text(out / f"{split}.jsonl", body)
        info[f"{split}_documents"] = len(texts)
        info[f"{split}_bytes"] = len(body.encode())
        info[f"{split}_sha256"] = hashlib.sha256(body.encode()).hexdigest()
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    return info
