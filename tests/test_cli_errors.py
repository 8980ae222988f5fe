"""One rule for every CLI: a user's mistake is one ``error:`` line and exit status 2; a fault keeps its traceback."""

from __future__ import annotations

import errno

import pytest

from runkit.cli import UserError, user_errors


@pytest.mark.parametrize(
    "err,line",
    [
        (UserError("MODEL.LORA.RANK=0 must be >= 1"), "error: MODEL.LORA.RANK=0 must be >= 1"),
        (ValueError("SOLVER.BASE_LR=-1 must be >= 0"), "error: SOLVER.BASE_LR=-1 must be >= 0"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "cfg.yaml"), "cfg.yaml: No such file"),
        (OSError(errno.ENOSPC, "No space left on device", "out/last.pt"), "free some space or choose another"),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/run"), "choose a folder you may write"),
    ],
)
def test_a_users_mistake_is_one_error_line_and_status_2(err, line, capsys):
    with pytest.raises(SystemExit) as stop, user_errors():
        raise err
    assert stop.value.code == 2
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: ") and line in err_text and err_text.count("\n") == 1


@pytest.mark.parametrize("err", [RuntimeError("shape mismatch"), KeyError("x"), TypeError("bug")])
def test_an_internal_fault_keeps_its_traceback(err):
    with pytest.raises(type(err)), user_errors():
        raise err
