"""내보내기용 절단 SVD (Fast R-CNN 3.1 절 "Truncated SVD for faster detection").

추론에서 검출기 헤드의 fc 층은 RoI 마다 한 번씩 돌아 (VGG16 fc6: RoI 당 25088×4096 ≈ 103 M MAC,
300 RoI 면 600×800 합성곱의 약 ¼) 시간을 많이 쓴다. 가중치 W [u, v] 를 특잇값 상위 t 개로
W ≈ (U_t Σ_t) V_tᵀ 로 근사해 fc 하나를 바이어스 없는 [u, t] 층과 [t, v] 층(원래 바이어스·활성화) 두 개로
바꾼다: MAC 이 u·v 에서 t·(u + v) 로 준다. 논문의 VGG16 설정은 fc6 t = 1024, fc7 t = 256.

학습된 가중치는 바꾸지 않는다: 새 몸통을 만들어 추론 모델 (`inference_model`) 에서만 쓴다.

용어:
  u 입력 차원, v 출력 차원, t 남길 특잇값 수 (rank). t·(u + v) ≥ u·v 이면 MAC 이 줄지 않아 그 층은
    그대로 둔다.
"""

import keras
import numpy as np

FC_LAYER_NAMES = ("fc6", "fc7")


def parse_ranks(text):
    """'--fc_svd_ranks' 문자열 → None (설정 그대로), () (끔) 또는 (fc6, fc7).

    Raises:
      ValueError: 정수 두 개 ≥ 0 이나 'none' 이 아닐 때.
    """
    if text is None:
        return None
    if text.strip().lower() in ("none", "off", ""):
        return ()
    try:
        ranks = tuple(int(value) for value in text.split(","))
    except ValueError:
        ranks = ()
    if len(ranks) != len(FC_LAYER_NAMES) or min(ranks) < 0:
        raise ValueError(f"--fc_svd_ranks='{text}': expected two integers ≥ 0 like '1024,256', or 'none'")
    return ranks


def factorize(kernel, rank):
    """[u, v] 커널 → ([u, t], [t, v]) float32, 곱이 W 의 rank-t 절단 SVD (U_t Σ_t V_tᵀ) 와 같다.

    작은 쪽 Gram 행렬의 고유분해로 구한다 (W = UΣVᵀ 면 WᵀW = VΣ²Vᵀ, W V_t = U_t Σ_t): 큰 쪽 차원의
    전체 SVD 를 피하므로 VGG16 fc6 (25088×4096) 처럼 긴 행렬에서 `np.linalg.svd` 보다 훨씬 빠르다.
    """
    weights = np.asarray(kernel, np.float64)
    if weights.shape[0] >= weights.shape[1]:
        _, vectors = np.linalg.eigh(weights.T @ weights)  # 고윳값 오름차순
        right = vectors[:, ::-1][:, :rank]  # V_t [v, t]
        return (weights @ right).astype(np.float32), right.T.astype(np.float32)
    _, vectors = np.linalg.eigh(weights @ weights.T)
    left = vectors[:, ::-1][:, :rank]  # U_t [u, t]
    return left.astype(np.float32), (left.T @ weights).astype(np.float32)


def _worth_factorizing(kernel_shape, rank):
    """t·(u + v) < u·v 일 때만 나눈다 (그래야 MAC 이 준다)."""
    rows, columns = kernel_shape
    return 0 < rank and rank * (rows + columns) < rows * columns


def compress_fc_head(body, ranks):
    """Flatten → fc6 → fc7 몸통(`backbones.fc_head`) 을 절단 SVD 로 근사한 새 추론용 몸통.

    Args:
      body: keras.Model, 층 이름 fc6, fc7 의 Dense(relu) 를 가진 헤드 몸통.
      ranks: (fc6 의 t, fc7 의 t); 0 이면 그 층은 그대로.

    Returns:
      (새 keras.Model, {층 이름: 쓴 t 또는 None}). Dropout 은 추론이라 뺀다.

    Raises:
      ValueError: fc6/fc7 이 없는 몸통 (ResNet conv5, MobileNetV2 헤드) 이나 rank 개수가 틀릴 때.
    """
    names = [layer.name for layer in body.layers]
    if not all(name in names for name in FC_LAYER_NAMES):
        raise ValueError(f"truncated SVD needs an fc6/fc7 head; '{body.name}' has layers {names}")
    if len(ranks) != len(FC_LAYER_NAMES):
        raise ValueError(f"need {len(FC_LAYER_NAMES)} SVD ranks (fc6, fc7), got {list(ranks)}")
    inputs = keras.Input(body.input_shape[1:])
    x = keras.layers.Flatten()(inputs)
    used = {}
    for name, rank in zip(FC_LAYER_NAMES, ranks):
        layer = body.get_layer(name)
        kernel, bias = (weight.numpy() for weight in (layer.kernel, layer.bias))
        if not _worth_factorizing(kernel.shape, rank):
            dense = keras.layers.Dense(kernel.shape[1], activation="relu", name=name)
            x = dense(x)
            dense.set_weights([kernel, bias])
            used[name] = None
            continue
        first, second = factorize(kernel, rank)
        reduce = keras.layers.Dense(rank, use_bias=False, name=f"{name}_svd_u")
        expand = keras.layers.Dense(kernel.shape[1], activation="relu", name=f"{name}_svd_v")
        x = expand(reduce(x))
        reduce.set_weights([first])
        expand.set_weights([second, bias])
        used[name] = rank
    return keras.Model(inputs, x, name=f"{body.name}_svd"), used
