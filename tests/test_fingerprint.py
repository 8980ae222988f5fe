"""File fingerprints catch a rewrite behind the same path, even one with the same size and a restored mtime."""

from __future__ import annotations

import os

import pytest

from runkit.fingerprint import changed_files, file_fingerprint, files_fingerprint


def test_same_size_rewrite_with_restored_mtime_changes_the_fingerprint(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 100)
    before = file_fingerprint(f)
    assert file_fingerprint(f) == before  # memoised: same answer without re-reading
    st = f.stat()
    f.write_bytes(b"b" * 100)  # same size, rewritten in place (same inode) ...
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and its mtime restored, as cp -p / rsync -t do
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert file_fingerprint(f) != before


def test_a_folder_fingerprint_names_the_file_that_changed(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "d" / name).write_text(name)
    first = files_fingerprint([tmp_path / "d"])
    (tmp_path / "d" / "b.txt").write_text("changed")
    (tmp_path / "d" / "c.txt").write_text("new")
    changed = changed_files(first, files_fingerprint([tmp_path / "d"]))
    assert [os.path.basename(p) for p in changed] == ["b.txt", "c.txt"]


def test_the_memo_never_changes_a_result_when_damaged(tmp_path, monkeypatch):
    memo = tmp_path / "memo.json"
    monkeypatch.setenv("TOAST_FINGERPRINT_INDEX", str(memo))
    f = tmp_path / "x"
    f.write_text("hello")
    digest = file_fingerprint(f)
    memo.write_text("{not json")
    assert file_fingerprint(f) == digest


def test_a_batch_reads_each_unchanged_file_once_and_keeps_one_memo_entry_per_path(tmp_path, monkeypatch):
    import json

    import runkit.fingerprint as fp

    memo = tmp_path / "memo.json"
    monkeypatch.setenv("TOAST_FINGERPRINT_INDEX", str(memo))
    files = [tmp_path / f"{i}.bin" for i in range(5)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 10)
    first = files_fingerprint(files)
    real = fp.sha256_of_file
    monkeypatch.setattr(fp, "sha256_of_file", lambda p: pytest.fail(f"re-hashed {p}"))
    assert files_fingerprint(files) == first  # all from the memo
    files[0].write_bytes(b"x" * 10)
    monkeypatch.setattr(fp, "sha256_of_file", real)
    second = files_fingerprint(files)
    assert changed_files(first, second) == [str(files[0].resolve())]
    assert len(json.loads(memo.read_text())) == 5  # the old entry of the rewritten file was replaced
