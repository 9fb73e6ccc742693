"""내보낸 LiteRT (.tflite)·ONNX (.onnx) 파일을 불러와 돌린다 (`loader.load` 가 SavedModel 과 같은 꼴로 내준다).

용어:
  실행기(runner): uint8 [1, H, W, 3] numpy 이미지 → `signature.OUTPUT_NAMES` 의 numpy dict. 런타임 (ai-edge-litert,
    onnxruntime) 은 `[deploy]` 추가 설치에 있다; 없으면 그 이름을 밝히는 ImportError 한 줄.
  클래스 이름: 파일 메타데이터의 `signature.LABELS_KEY` (0 번은 빈 이름 = 패딩).
  쓸 수 있는 코어 (`usable_cores`): 이 프로세스의 CPU 친화성 마스크와 컨테이너의 cgroup v2 CPU 할당 중 작은 것.
    LiteRT 인터프리터와 ONNX Runtime 세션의 스레드 수 기본값이고, tools/serve 의 스레드 기본값도 이것을 쓴다.
  인터프리터 풀: LiteRT 인터프리터 하나는 한 번에 한 호출만 돌릴 수 있다 (invoke 중 다른 스레드가 부르면 안 된다).
    그래서 인터프리터 K 개 (기본 1) 를 큐에 두고 호출마다 하나를 빌린다; 각자 코어 ÷ K 스레드를 쓴다. ONNX Runtime
    세션의 run 은 여러 스레드에서 함께 불러도 되므로 세션 하나를 나눠 쓴다.
"""

import json
import math
import os
import queue

import numpy as np

from frcnn.export import signature

SUFFIXES = {".tflite": "tflite", ".onnx": "onnx"}


def kind_of(path):
    """경로의 형식: 'tflite', 'onnx' 또는 None (SavedModel 디렉터리 등)."""
    return SUFFIXES.get(os.path.splitext(str(path))[1].lower())


def usable_cores(cgroup_cpu_max="/sys/fs/cgroup/cpu.max"):
    """이 프로세스가 쓸 수 있는 CPU 코어 수 (1 이상): 친화성 마스크와 cgroup v2 CPU 할당 (cpu.max) 중 작은 것.

    Args:
      cgroup_cpu_max: cgroup v2 의 cpu.max 파일 ("QUOTA PERIOD" 또는 "max PERIOD"; 없으면 할당 없음).
    """
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open(cgroup_cpu_max) as handle:
            quota, period = handle.read().split()[:2]
        return count if quota == "max" else max(1, min(count, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError, ZeroDivisionError):
        return count


class PortableRunner:
    """.tflite 또는 .onnx 검출기 하나. 여러 스레드에서 함께 불러도 된다.

    Args:
      path: .tflite 또는 .onnx 파일.
      num_threads: 런타임이 쓸 스레드 수의 합 (None 이면 `usable_cores()`). LiteRT 는 인터프리터마다
        num_threads ÷ num_interpreters (1 이상), ONNX Runtime 은 세션의 intra_op_num_threads.
      num_interpreters: LiteRT 인터프리터 풀 크기 (동시에 돌 수 있는 호출 수; ONNX 에는 쓰지 않는다).

    Raises:
      ImportError: 런타임이 없을 때 (메시지가 `[deploy]` 를 말한다).
      ValueError: 파일이 없거나 읽을 수 없을 때, 메타데이터에 클래스 이름이 없을 때, 스레드·풀 수가 1 보다 작을 때.
    """

    def __init__(self, path, num_threads=None, num_interpreters=1):
        self.path = str(path)
        self.signatures = _portable_signatures()
        self.kind = kind_of(path)
        if self.kind is None or not os.path.isfile(self.path):
            raise ValueError(f"{self.path}: not a .tflite or .onnx file")
        self.num_threads = usable_cores() if num_threads is None else int(num_threads)
        if self.num_threads < 1 or num_interpreters < 1:
            raise ValueError(f"{self.path}: num_threads ({self.num_threads}) and num_interpreters "
                             f"({num_interpreters}) must be >= 1")
        self.num_interpreters = int(num_interpreters)
        try:
            loaded = self._load_tflite() if self.kind == "tflite" else self._load_onnx()
            self._run, self.class_names = loaded
        except ImportError as error:
            raise ImportError(f"{self.path}: running a .{self.kind} model needs {error.name}: install the "
                              f"deploy extra: {signature.DEPLOY_HINT}", name=error.name) from None

    def _load_tflite(self):
        from ai_edge_litert.interpreter import Interpreter

        threads = max(1, self.num_threads // self.num_interpreters)
        pool = queue.Queue()
        for _ in range(self.num_interpreters):
            interpreter = Interpreter(model_path=self.path, num_threads=threads)
            pool.put(interpreter.get_signature_runner("serving_default"))
        names = json.loads(_tflite_metadata(self.path)[signature.LABELS_KEY])

        def run(images):
            runner = pool.get()  # 빈 인터프리터가 생길 때까지 기다린다
            try:
                return runner(images=images)
            finally:
                pool.put(runner)

        return run, names

    def _load_onnx(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        session = onnxruntime.InferenceSession(self.path, sess_options=options,
                                               providers=["CPUExecutionProvider"])
        outputs = [output.name for output in session.get_outputs()]
        properties = session.get_modelmeta().custom_metadata_map
        if signature.LABELS_KEY not in properties:
            raise ValueError(f"{self.path}: no class names in the metadata (not made by tools/export)")

        def run(images):
            return dict(zip(outputs, session.run(None, {"images": images})))

        return run, json.loads(properties[signature.LABELS_KEY])

    def __call__(self, images):
        """uint8 [1, H, W, 3] → 출력 dict (numpy; detection_class_names 는 SavedModel 처럼 bytes).

        Raises:
          ValueError: uint8 [1, H, W, 3] 이 아닐 때.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != 1 or images.shape[-1] != 3:
            raise ValueError(f"{self.path}: expects uint8 images [1, H, W, 3], got {images.dtype} "
                             f"{list(images.shape)}")
        outputs = {name: np.asarray(value) for name, value in self._run(images).items()}
        names = np.array([name.encode("utf-8") for name in self.class_names], dtype=object)
        outputs[signature.CLASS_NAMES] = names[outputs[signature.CLASSES].astype(np.int64)]
        return outputs

    def run(self, signature_name, inputs):
        """`loader` 의 꼴: serving_default (images [B, H, W, 3]) 또는 serve_bytes (image_bytes [B]) → 출력 dict.

        파일의 배치는 1 이라 B 장을 한 장씩 돌려 쌓는다.
        """
        if signature_name == signature.SERVE_BYTES:
            return self.serve_bytes(list(inputs["image_bytes"]))
        images = inputs["images"]
        return _stacked([self(images[index:index + 1]) for index in range(images.shape[0])])

    def serve_bytes(self, image_bytes):
        """SavedModel 의 serve_bytes 와 같은 꼴: JPEG/PNG 바이트 B 개 → 출력 dict (numpy, 앞 차원 B).

        이미지마다 제 크기로 디코딩해 한 장씩 돌린다 (파일의 배치는 1). 디코딩은 SavedModel 과 같은
        ``tf.io.decode_image`` 라 검출이 같다.

        Raises:
          tf.errors.InvalidArgumentError: 디코딩할 수 없는 바이트일 때.
        """
        import tensorflow as tf

        return _stacked([self(tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()[None])
                         for encoded in image_bytes])


def _stacked(per_image):
    """이미지별 출력 dict 목록 → 앞 차원으로 이어 붙인 dict."""
    return {name: np.concatenate([outputs[name] for outputs in per_image]) for name in per_image[0]}


def _portable_signatures():
    """.tflite/.onnx 파일이 내는 시그니처 (SavedModel 의 serving_default, serve_bytes 와 같은 이름과 꼴)."""
    import tensorflow as tf

    outputs = dict(sorted(signature.output_specs().items()))
    names = (signature.SERVE_BYTES, signature.SERVING_DEFAULT)
    inputs = {name: signature.INPUT_SPECS[name] for name in names}
    return {name: ({spec.name: tf.TensorSpec(spec.shape, spec.dtype)}, outputs)
            for name, spec in sorted(inputs.items())}


def _tflite_metadata(path):
    """.tflite 의 metadata 항목 {이름: 바이트} (ai-edge-litert 의 TFLite 스키마로 읽는다; TensorFlow 없이).

    Raises:
      ValueError: 클래스 이름 항목이 없을 때.
    """
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as handle:
        model = schema.Model.GetRootAs(handle.read(), 0)
    entries = {}
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        entries[entry.Name().decode()] = bytes(data) if not isinstance(data, int) else b""
    if signature.LABELS_KEY not in entries:
        raise ValueError(f"{path}: no class names in the metadata (not made by tools/export)")
    return entries
