"""The run plumbing both halves share: JSON-lines records that survive a kill, one main-process question."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runkit.files import read_jsonl


def test_a_last_line_cut_short_is_left_out_and_a_damaged_middle_line_is_named(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epo')  # killed while appending epoch 3
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    assert "last line is incomplete" in caplog.text and str(path) in caplog.text
    path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not a JSON record"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "none.jsonl") == []


@pytest.mark.parametrize("rank,main", [("0", True), ("1", False), (None, True)])
def test_the_main_process_is_rank_0_before_torch_is_imported(rank, main):
    probe = "import sys; from runkit.runs import is_main_process; print(is_main_process(), 'torch' in sys.modules)"
    env = {"PATH": "", "PYTHONPATH": "."} | ({"RANK": rank} if rank is not None else {})
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [str(main), "False"]
