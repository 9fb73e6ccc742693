"""모델 버전: TF Serving 처럼 번호 붙은 하위 디렉터리 (``BASE/1``, ``BASE/2``, …) 를 서빙하고 바꿔 끼운다.

TF Serving 의 기본 정책 (최신 버전 하나, 가용성 유지) 을 따른다: 가장 큰 번호의 버전을 불러와 워밍업까지
끝낸 뒤에야 지금 버전과 바꾼다 (바꾸는 동안 실패하는 요청이 없다: 이미 받은 요청은 옛 버전으로 끝난다).
불러오지 못한 버전은 상태에 ``END`` 와 그 오류로 남고 옛 버전이 계속 서빙한다; 그 디렉터리의 내용
(파일 크기·수정 시각) 이 바뀌면 (예: 복사가 끝나면) 다시 시도한다. ``poll_seconds`` 마다 디렉터리를 본다.

용어:
  버전(version): 양의 정수 이름의 하위 디렉터리 하나.
  상태(state): TF Serving 의 ModelVersionStatus.State 이름 (LOADING, AVAILABLE, END).
  지문(fingerprint): 디렉터리 안 파일들의 (상대 경로, 크기, 수정 시각) — 바뀌었는지 볼 때 쓴다.
"""

import dataclasses
import logging
import os
import threading


from frcnn.serving import servable as servable_lib

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """버전 하나의 상태 (TF Serving 의 ModelVersionStatus)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


def numbered_versions(base_path):
    """base_path 아래 양의 정수 이름 디렉터리들: 버전 → 경로."""
    try:
        names = os.listdir(base_path)
    except OSError:
        return {}
    return {int(name): os.path.join(base_path, name) for name in names
            if name.isdigit() and int(name) > 0 and os.path.isdir(os.path.join(base_path, name))}


def directory_fingerprint(path):
    """디렉터리 안 파일들의 (상대 경로, 크기, 수정 시각 ns) 정렬 튜플."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


class VersionManager:
    """서빙 중인 버전 하나와 모든 버전의 상태.

    ``from_servable`` (버전 하나, 바뀌지 않음) 또는 ``from_base_path`` (번호 디렉터리, 폴링) 로 만든다.
    """

    def __init__(self, base_path=None, poll_seconds=1.0, warmup=True, load=servable_lib.load_servable):
        self.base_path = base_path
        self.poll_seconds = poll_seconds
        self._warmup = warmup
        self._load = load
        self._lock = threading.Lock()
        self._current = None
        self._statuses = {}
        self._failed = {}  # 버전 → 실패했을 때의 지문
        self._stop = threading.Event()
        self._thread = None

    @classmethod
    def from_servable(cls, servable):
        """이미 불러온 servable 하나만 서빙한다 (``--saved_model``)."""
        manager = cls()
        manager._swap_in(servable)
        return manager

    @classmethod
    def from_base_path(cls, base_path, poll_seconds=1.0, warmup=True, load=servable_lib.load_servable):
        """base_path 의 최신 버전을 불러온다 (``start`` 를 부르면 그 뒤로 폴링).

        Raises:
          ValueError: 디렉터리가 없거나, 번호 디렉터리가 없거나, 최신 버전을 불러올 수 없을 때.
        """
        if not os.path.isdir(base_path):
            raise ValueError(f"{base_path}: model base path not found")
        manager = cls(base_path, poll_seconds, warmup, load)
        manager.poll()
        if manager.current() is None:
            problems = [f"version {status.version}: {status.error_message}" for status in manager.statuses()]
            raise ValueError(f"{base_path}: no loadable version "
                             f"({'; '.join(problems) or 'no numbered version directory such as 1/'})")
        return manager

    def current(self, version=None):
        """서빙 중인 servable (version 이 주어지면 그 번호일 때만), 없으면 None."""
        with self._lock:
            servable = self._current
        if servable is None or (version is not None and servable.version != version):
            return None
        return servable

    def statuses(self):
        """모든 버전의 VersionStatus, 번호 내림차순."""
        with self._lock:
            return [self._statuses[version] for version in sorted(self._statuses, reverse=True)]

    def poll(self):
        """디렉터리를 한 번 보고, 가장 큰 번호가 서빙 중인 버전과 다르면 불러와 바꾼다."""
        versions = numbered_versions(self.base_path)
        if not versions:
            return
        aspired = max(versions)
        current = self.current()
        if current is not None and current.version == aspired:
            return
        fingerprint = directory_fingerprint(versions[aspired])
        if self._failed.get(aspired) == fingerprint:
            return
        self._set_status(VersionStatus(aspired, "LOADING"))
        try:
            servable = self._load(versions[aspired], aspired)
            if self._warmup:
                servable.warmup()
        except Exception as error:  # 깨진 버전은 어떤 오류든 END 로 알리고 이전 버전을 계속 쓴다
            self._failed[aspired] = fingerprint
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self._set_status(VersionStatus(aspired, "END", "UNKNOWN", message))
            logger.error("cannot load version %d from %s: %s", aspired, versions[aspired], message)
            return
        self._failed.pop(aspired, None)
        self._swap_in(servable)
        logger.info("serving version %d from %s", aspired, versions[aspired])

    def start(self):
        """폴링 스레드를 시작한다 (base_path 가 없으면 아무것도 하지 않는다)."""
        if self.base_path is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll_loop, name="version-poll", daemon=True)
        self._thread.start()

    def stop(self):
        """폴링 스레드를 멈춘다."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_loop(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - 폴링이 죽으면 새 버전을 못 본다: 남기고 계속한다.
                logger.exception("version poll of %s failed", self.base_path)

    def _set_status(self, status):
        with self._lock:
            self._statuses[status.version] = status

    def _swap_in(self, servable):
        """새 servable 을 서빙 중으로 하고 옛 버전은 END 로 둔다."""
        with self._lock:
            previous, self._current = self._current, servable
            self._statuses[servable.version] = VersionStatus(servable.version, "AVAILABLE")
            if previous is not None and previous.version != servable.version:
                self._statuses[previous.version] = VersionStatus(previous.version, "END")
