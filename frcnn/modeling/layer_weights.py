"""층 이름으로 찾는 가중치 파일 (.npz): 키 `<층 이름>/<변수 번호>` → 배열 (`layer.get_weights()` 순서).

Keras 의 `.weights.h5` 는 층의 클래스와 순서로 자리를 찾아, 같은 가중치를 FrozenBatchNorm 몸통 (v1) 과
BatchNormalization 몸통 (v2, 사전학습 없는 v1) 에 함께 실을 수 없다. 이 파일은 이름만 본다: `tools/import_weights
--arch=resnet50` 이 쓰고, 피라미드 백본 (`fpn_backbones`) 이 `--backbone_weights` 로 ResNet 몸통에 싣는다.
"""

import numpy as np

SUFFIX = ".npz"


def save_layers(model, path):
    """model 의 가중치 있는 층마다 `<이름>/<i>` 키로 path (.npz) 에 쓴다."""
    arrays = {f"{layer.name}/{index}": value for layer in model.layers
              for index, value in enumerate(layer.get_weights())}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_layers(model, path):
    """path (.npz) 의 값을 model 의 같은 이름 층에 싣는다 — 모든 층이 설정되고 파일의 모든 값이 쓰여야 한다.

    Raises:
      ValueError: 읽을 수 없는 파일, 파일에 없는 층, 모델에 없는 층, 모양·개수가 다른 층 (이름을 밝힌다).
    """
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a layer weights file (.npz): {error}") from None
    stored = {}
    for key, value in arrays.items():
        name, _, index = key.rpartition("/")
        stored.setdefault(name, {})[index] = value
    layers = [layer for layer in model.layers if layer.weights]
    missing = [layer.name for layer in layers if layer.name not in stored]
    extra = sorted(set(stored) - {layer.name for layer in layers})
    mismatched = [layer.name for layer in layers if layer.name in stored
                  and [tuple(w.shape) for w in layer.weights]
                  != [np.shape(stored[layer.name].get(str(i))) for i in range(len(layer.weights))]]
    if missing or extra or mismatched:
        raise ValueError(f"{path}: does not fit '{model.name}' — layers missing from the file: "
                         f"{missing[:12]}, "
                         f"unknown layers: {extra[:12]}, mis-shaped: {mismatched[:12]}")
    for layer in layers:
        layer.set_weights([stored[layer.name][str(i)] for i in range(len(layer.weights))])
