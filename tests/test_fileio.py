"""frcnn.fileio 테스트: 성공하면 최종 이름만 남고, 실패하면 아무것도 (임시 파일도) 남지 않는다."""

import json
import os

import pytest

from frcnn import fileio


def _listing(directory):
    return sorted(os.listdir(directory))


def test_staged_files_commit_all_or_nothing(tmp_path):
    with fileio.staged_files(tmp_path) as staged:
        for name in ("a.txt", "b.txt"):
            with open(staged.path(name), "w") as handle:
                handle.write(name)
        assert _listing(tmp_path)[0].startswith(".staging.tmp-")  # 아직 최종 이름은 없다
    assert _listing(tmp_path) == ["a.txt", "b.txt"]
    assert (tmp_path / "b.txt").read_text() == "b.txt"

    with pytest.raises(RuntimeError):
        with fileio.staged_files(tmp_path) as staged:
            with open(staged.path("a.txt"), "w") as handle:
                handle.write("new")
            with open(staged.path("c.txt"), "w") as handle:
                handle.write("c")
            raise RuntimeError("boom")
    assert _listing(tmp_path) == ["a.txt", "b.txt"]
    assert (tmp_path / "a.txt").read_text() == "a.txt"  # 옛 내용 그대로


def test_staged_files_rejects_paths(tmp_path):
    staged = fileio.StagedFiles(tmp_path)
    with pytest.raises(ValueError, match="not a plain file name"):
        staged.path("sub/x.txt")
    staged.abort()
    assert _listing(tmp_path) == []


def test_atomic_write_and_json(tmp_path):
    path = tmp_path / "new" / "report.json"
    fileio.write_json(path, {"mAP": 0.5, "이름": "개"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"mAP": 0.5, "이름": "개"}
    with pytest.raises(TypeError):
        fileio.write_json(path, {"bad": object()})
    assert json.loads(path.read_text(encoding="utf-8"))["mAP"] == 0.5
    assert _listing(path.parent) == ["report.json"]
    with fileio.atomic_write(tmp_path / "bytes.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "bytes.bin").read_bytes() == b"\x00\x01"


def test_atomic_directory_replaces_or_keeps_old(tmp_path):
    target = tmp_path / "export"
    with fileio.atomic_directory(target) as staging:
        (open(os.path.join(staging, "v1"), "w")).close()
    assert _listing(target) == ["v1"]
    assert os.stat(target).st_mode & 0o777 != 0o700  # mkdtemp 의 0700 이 아니라 umask 를 따른다
    with pytest.raises(RuntimeError):
        with fileio.atomic_directory(target) as staging:
            (open(os.path.join(staging, "v2"), "w")).close()
            raise RuntimeError("boom")
    assert _listing(target) == ["v1"]
    with fileio.atomic_directory(target) as staging:
        (open(os.path.join(staging, "v2"), "w")).close()
    assert _listing(target) == ["v2"]
    assert _listing(tmp_path) == ["export"]  # 임시·옛 디렉터리가 남지 않는다


def test_failed_commit_rolls_back_moved_files(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a")
    real_replace = os.replace
    calls = []

    def failing_replace(source, target):
        calls.append(target)
        if str(target).endswith("b.txt") and ".staging" not in str(target):
            raise OSError("disk full")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        with fileio.staged_files(tmp_path) as staged:
            for name in ("a.txt", "b.txt"):
                with open(staged.path(name), "w") as handle:
                    handle.write("new " + name)
    assert _listing(tmp_path) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old a"  # 이미 옮긴 새 a 는 되돌렸다


def test_failed_directory_swap_keeps_the_old_directory(tmp_path, monkeypatch):
    target = tmp_path / "export"
    target.mkdir()
    (target / "v1").write_text("1")
    real_replace = os.replace

    def failing_replace(source, destination):
        if str(destination) == str(target) and ".export.tmp-" in str(source):
            raise OSError("cross-device")
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="cross-device"):
        with fileio.atomic_directory(target) as staging:
            (open(os.path.join(staging, "v2"), "w")).close()
    assert _listing(target) == ["v1"]
    assert _listing(tmp_path) == ["export"]
