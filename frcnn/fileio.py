"""원자적 쓰기: 임시 이름으로 다 쓴 뒤 이름을 바꾼다. 실패하면 아무것도 남기지 않는다.

용어:
  스테이징(staging): 출력 디렉터리 안의 숨김 임시 디렉터리 (`.<이름>.tmp-XXXX`). 같은 파일 시스템이라
    `os.replace` 가 원자적이다.
  커밋(commit): 스테이징에 다 쓴 파일을 최종 이름으로 옮기는 것. 예외가 나면 커밋하지 않고 스테이징을 지운다.

이 프로젝트의 모든 출력(레코드 샤드, run.json, 보고서, 그린 이미지, SavedModel, 샘플 데이터셋)이
이 모듈 하나를 거친다.
"""

import contextlib
import json
import os
import shutil
import tempfile


def _umask_mode(mode):
    """현재 umask 를 적용한 권한 (mkdtemp 의 0700 대신 보통 디렉터리처럼)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


class StagedFiles:
    """한 디렉터리에 여러 파일을 모두-아니면-없음으로 쓴다.

    `path(name)` 이 돌려주는 임시 경로에 쓰고, `commit()` 에서 모두 `directory/name` 으로 옮긴다.
    """

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._staging = tempfile.mkdtemp(prefix=".staging.tmp-", dir=directory)
        self._names = []

    def path(self, name):
        """`name` (디렉터리 구분자 없는 파일 이름) 의 임시 경로."""
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise ValueError(f"{name}: not a plain file name")
        if name not in self._names:
            self._names.append(name)
        return os.path.join(self._staging, name)

    def commit(self):
        """쓴 파일을 최종 이름으로 옮기고 최종 경로 목록을 돌려준다.

        옮기다 실패하면 이미 옮긴 파일을 되돌리고 (덮어쓴 옛 파일은 복원) 예외를 올린다.
        """
        backup = tempfile.mkdtemp(prefix=".staging.old-", dir=self.directory)
        moved = []  # (최종 경로, 옛 파일의 백업 경로 또는 None)
        try:
            for name in self._names:
                temporary = os.path.join(self._staging, name)
                if os.path.exists(temporary):
                    moved.append(self._move_into_place(temporary, name, backup))
        except BaseException:
            _roll_back(moved)
            raise
        finally:
            shutil.rmtree(backup, ignore_errors=True)
            self.abort()
        return [final_path for final_path, _ in moved]

    def _move_into_place(self, temporary, name, backup):
        """옛 파일이 있으면 backup 으로 치우고 새 파일을 최종 이름으로 옮긴다."""
        final_path = os.path.join(self.directory, name)
        old = None
        if os.path.lexists(final_path):
            old = os.path.join(backup, name)
            os.replace(final_path, old)
        os.replace(temporary, final_path)
        return final_path, old

    def abort(self):
        """스테이징을 지운다 (커밋하지 않은 파일은 사라진다)."""
        shutil.rmtree(self._staging, ignore_errors=True)


@contextlib.contextmanager
def staged_files(directory):
    """`StagedFiles` 를 열고, 블록이 끝나면 커밋한다 (예외면 지운다)."""
    staged = StagedFiles(directory)
    try:
        yield staged
    except BaseException:
        staged.abort()
        raise
    staged.commit()


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """파일 하나를 원자적으로 쓴다: `with atomic_write(p) as handle: handle.write(...)`."""
    directory = os.path.dirname(os.path.abspath(path))
    with staged_files(directory) as staged:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(staged.path(os.path.basename(path)), mode, **kwargs) as handle:
            yield handle


def _dump_json(data, handle, **json_options):
    """이 프로젝트의 JSON 모양: UTF-8 그대로, 들여쓰기 2, 끝에 줄바꿈."""
    json.dump(data, handle, **{"indent": 2, "ensure_ascii": False, **json_options})
    handle.write("\n")


def write_json(path, data, **json_options):
    """JSON 을 원자적으로 쓴다."""
    with atomic_write(path) as handle:
        _dump_json(data, handle, **json_options)


def dump_json(path, data, **json_options):
    """JSON 을 그냥 쓴다 — 이미 스테이징 안의 경로 (`StagedFiles.path`) 일 때."""
    with open(path, "w", encoding="utf-8") as handle:
        _dump_json(data, handle, **json_options)


@contextlib.contextmanager
def atomic_directory(path):
    """디렉터리 하나를 원자적으로 만든다 (또는 바꾼다).

    블록 안에서 돌려받은 임시 디렉터리에 모두 쓰면, 끝날 때 `path` 로 옮긴다. 옛 `path` 는 새 것이 자리를
    잡은 뒤에 지운다. 예외가 나면 임시 디렉터리를 지우고 옛 `path` 는 그대로 둔다.

    Yields:
      str, 임시 디렉터리 경로 (`path` 와 같은 상위 디렉터리 안).
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(path)
    staging = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield staging
        os.chmod(staging, _umask_mode(0o777))
        _replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _roll_back(moved):
    """커밋 중 실패: 옮긴 새 파일을 지우고 옛 파일을 제자리로 돌린다."""
    for final_path, old in reversed(moved):
        if old is None:
            os.remove(final_path)
        else:
            os.replace(old, final_path)


def _replace_directory(staging, path):
    """staging 을 path 로 옮긴다; 옛 path 는 옆으로 치웠다가 새 것이 자리를 잡은 뒤에만 지운다."""
    if not os.path.lexists(path):
        os.replace(staging, path)
        return
    trash = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=os.path.dirname(path))
    old = os.path.join(trash, "old")
    try:
        os.replace(path, old)
        try:
            os.replace(staging, path)
        except BaseException:
            os.replace(old, path)  # 새 것을 놓지 못했으면 옛 것을 되돌린다
            raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
