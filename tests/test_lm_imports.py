"""The language modules import one way: model → transfer → toast_policy → toast_install (no cycle); both
halves' transfer methods have one shape."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('language_generation')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_imports_run_one_way():
    assert not {"language_generation.model", "language_generation.transfer"} & _loaded_after(
        "language_generation.toast_policy"
    )
    after_transfer = _loaded_after("language_generation.transfer")
    assert "language_generation.toast_policy" in after_transfer and "language_generation.model" not in after_transfer


def test_both_halves_share_one_transfer_method_shape():
    from language_generation.transfer import TransferMethod as LanguageMethod
    from toast.registry import TransferMethod
    from visual_classification.models.transfer.registry import TransferMethod as VisionMethod

    shared = [f.name for f in TransferMethod.__dataclass_fields__.values()]
    for half in (LanguageMethod, VisionMethod):
        assert issubclass(half, TransferMethod) and list(half.__dataclass_fields__)[: len(shared)] == shared
    assert shared[:2] == ["name", "build"]
