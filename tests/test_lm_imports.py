"""The language modules import one way: model → methods → toast_policy → toast_install (no cycle), and the
config (with every method's keys) loads without the model; both halves' transfer methods have one shape."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('language_generation')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_imports_run_one_way():
    assert not {"language_generation.model", "language_generation.methods"} & _loaded_after(
        "language_generation.toast_policy"
    )
    after_methods = _loaded_after("language_generation.methods")
    assert "language_generation.toast_policy" in after_methods and "language_generation.model" not in after_methods
    after_config = _loaded_after("language_generation.config")
    assert not {"language_generation.model", "language_generation.run_files"} & after_config


def test_both_halves_share_one_transfer_method_shape():
    from language_generation.methods import TransferMethod as LanguageMethod
    from toast.registry import TransferMethod
    from visual_classification.models.transfer.registry import TransferMethod as VisionMethod

    shared = [f.name for f in TransferMethod.__dataclass_fields__.values()]
    for half in (LanguageMethod, VisionMethod):
        assert issubclass(half, TransferMethod) and list(half.__dataclass_fields__)[: len(shared)] == shared
    assert shared[:2] == ["name", "build"]
