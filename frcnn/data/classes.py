"""클래스 목록의 유일한 집: --classes 값 읽기, 자동 목록 규칙, 클래스 이름 → id.

모든 소스(VOC 디렉터리, tfds)와 평가기가 이 모듈로 클래스 목록을 정하고 이름을 id 로 바꾼다.

용어:
  C: 데이터셋 클래스 수. id 0 은 배경, 데이터셋 클래스는 목록 순서대로 1..C.
  --classes 값: None 또는 '' (자동), 'a,b,c' 쉼표 목록, 또는 한 줄에 하나씩 이름이 적힌 텍스트 파일 경로.
  자동 규칙: 발견된 이름이 모두 VOC 클래스면 `voc.VOC_CLASSES` (VOC 순서), 아니면 발견된 이름을 정렬한 것.
  labelled: (위치, 클래스 이름들) 쌍의 iterable. 위치는 오류 메시지에 쓸 파일 경로 (XML 등).
오류는 `voc.VocError` (str == f"{path}: {problem}"): 목록 자체의 문제는 --classes 값, 목록에 없는
클래스는 그 이름이 나온 위치를 path 로 한다.
"""

import os

import numpy as np

from frcnn.data import voc


def parse_classes_flag(classes_flag: str) -> tuple:
    """비지 않은 --classes 값 (쉼표 목록 또는 클래스 파일 경로) 을 클래스 이름 tuple (id 1..C 순서) 로 읽는다.

    Raises:
      voc.VocError: 클래스 파일이 없거나 읽을 수 없음, 빈 이름, 빈 목록, 중복 이름.
    """
    if os.path.isfile(classes_flag):
        lines = voc.read_text(classes_flag, what="classes file").splitlines()
        names = [line.strip() for line in lines if line.strip()]
    elif "," not in classes_flag and (os.sep in classes_flag or classes_flag.endswith(".txt")):
        raise voc.VocError(classes_flag, "classes file not found")
    else:
        names = [name.strip() for name in classes_flag.split(",")]
        if "" in names:
            raise voc.VocError(classes_flag, "empty class name in the comma-separated list")
    if not names:
        raise voc.VocError(classes_flag, "no class names given")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise voc.VocError(classes_flag, f"duplicate class names: {', '.join(duplicates)}")
    return tuple(names)


def discover_classes(found_names) -> tuple:
    """자동 규칙: 발견된 이름 (중복 가능) 이 모두 VOC 클래스면 `voc.VOC_CLASSES`, 아니면 그 정렬 tuple."""
    found = set(found_names)
    if found <= set(voc.VOC_CLASSES):
        return voc.VOC_CLASSES
    return tuple(sorted(found))


def class_ids(class_names, classes, source_path: str) -> np.ndarray:
    """[G] 클래스 이름을 목록 (id 1..C 순서) 의 [G] int64 id 로 바꾼다.

    Raises:
      voc.VocError: 목록에 없는 클래스가 있을 때 (source_path 로).
    """
    id_by_name = {name: index + 1 for index, name in enumerate(classes)}
    for name in class_names:
        if name not in id_by_name:
            raise voc.VocError(source_path, f"unknown class {name!r} (known: {', '.join(classes)})")
    return np.array([id_by_name[name] for name in class_names], dtype=np.int64)


def unnamed_class(class_id):
    """이름이 없는 클래스 id 의 이름 (`class_<id>`)."""
    return f"class_{int(class_id)}"


def from_id_name_pairs(pairs):
    """레코드처럼 id 가 이미 붙은 (id, 이름) 쌍들에서 클래스 목록을 정한다.

    id k 의 이름은 처음 나온 비지 않은 이름, 이름이 한 번도 없으면 `class_k`; 목록은 1..최대 id (id ≤ 0 인
    배경·패딩 쌍은 무시). (names tuple, id_to_name dict) 를 돌려주며 id_to_name 에는 이름이 나온 id 만 있다.
    """
    id_to_name, max_id = {}, 0
    for class_id, name in pairs:
        class_id = int(class_id)
        max_id = max(max_id, class_id)
        if class_id > 0 and name:
            id_to_name.setdefault(class_id, name)
    names = tuple(id_to_name.get(class_id, unnamed_class(class_id)) for class_id in range(1, max_id + 1))
    return names, id_to_name
