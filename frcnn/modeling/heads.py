"""검출기 헤드: RoI 특징 → 검출기 몸통(fc6/fc7 또는 conv5) → C+1 클래스 로짓과 클래스별 박스 델타.

용어:
  N RoI 총수 (B·R), P RoI 출력 크기, Cf 특징 채널, D 몸통 출력 차원, C 클래스 수 (배경 0 제외).
  몸통(body)은 만들 때 받는다 (`backbones.build_box_head`, 내보내기에서는 `OutputMajorFcBody`).
  출력 축 먼저 (output-major) 커널: Dense 의 커널 [K, D] 를 전치해 [D, K] 로 저장한 것. 행이 적은 (N = 300 RoI)
    큰 행렬곱 (fc6: 25088 → 4096) 을 Eigen 은 D·Kᵀ 꼴 [D, K] · [K, N] 로 훨씬 빨리 한다 (같은 곱셈·덧셈,
    benchmarks/RESULTS.md "Issue 23").
"""

import keras
import numpy as np
import tensorflow as tf


class DetectorHead(keras.layers.Layer):
    """[N, P, P, Cf] RoI 특징 → (class_logits [N, C+1] float32, box_deltas [N, C+1, 4] float32)."""

    def __init__(self, body, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.body = body
        self.num_classes = num_classes
        self.class_logits = keras.layers.Dense(
            num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="class_logits")
        self.box_deltas = keras.layers.Dense(
            (num_classes + 1) * 4, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            name="box_deltas")

    def call(self, roi_features, training=False, portable=False):
        """portable: 이식 그래프 (LiteRT·ONNX) 를 만든다 — 몸통이 `OutputMajorFcBody` 일 때만 뜻이 있다."""
        # [N, D] 몸통 출력
        if isinstance(self.body, OutputMajorFcBody):
            hidden = self.body(roi_features, portable=portable)
        else:
            hidden = self.body(roi_features, training=training)
        class_logits = tf.cast(self.class_logits(hidden), tf.float32)
        box_deltas = tf.reshape(tf.cast(self.box_deltas(hidden), tf.float32),
                                [-1, self.num_classes + 1, 4])
        return class_logits, box_deltas


class OutputMajorFcBody(keras.layers.Layer):
    """추론 전용 fc 몸통: [N, P, P, Cf] → Flatten → Dense 들 → [N, D], 커널을 출력 축 먼저 [D, K] 로 저장한다.

    학습된 Flatten → Dense(…) 몸통 (fc6/fc7, 또는 절단 SVD 몸통) 과 같은 값을 낸다. SavedModel 그래프는
    ``(W_out_major · xᵀ)ᵀ`` 로, 이식 그래프 (``portable=True``) 는 ``x · W_out_majorᵀ`` (LiteRT FULLY_CONNECTED
    의 가중치 꼴 그대로, ONNX Gemm) 로 곱한다.

    Raises:
      ValueError: 몸통에 Flatten·Dropout·Dense (활성 linear/relu) 가 아닌 층이 있을 때.
    """

    def __init__(self, body, **kwargs):
        super().__init__(**kwargs)
        self._dense = []  # (커널 [D, K], 편향 [D] 또는 None, relu 여부)
        for layer in body.layers:
            if isinstance(layer, (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Dropout)):
                continue
            dense = isinstance(layer, keras.layers.Dense)
            activation = layer.get_config().get("activation") if dense else None
            if activation not in ("linear", "relu"):
                raise ValueError(f"'{body.name}': layer '{layer.name}' is not a Dense layer with a linear or "
                                 f"relu activation; an output-major fc body cannot hold it")
            bias = self._copy(layer.bias.numpy(), f"{layer.name}_bias") if layer.use_bias else None
            kernel = self._copy(layer.kernel.numpy().T, f"{layer.name}_kernel_out_major")
            self._dense.append((kernel, bias, activation == "relu"))

    def build(self, input_shape):
        features = int(np.prod(input_shape[1:]))
        if features != self._dense[0][0].shape[1]:
            raise ValueError(f"cannot copy the trained fc weights into '{self.name}': its RoI features "
                             f"{list(input_shape[1:])} have {features} values, the first fc layer takes "
                             f"{self._dense[0][0].shape[1]}")
        super().build(input_shape)

    def _copy(self, value, name):
        weight = self.add_weight(shape=value.shape, initializer="zeros", trainable=False, name=name)
        weight.assign(value)
        return weight

    def call(self, roi_features, portable=False):
        hidden = tf.reshape(roi_features, [tf.shape(roi_features)[0], -1])
        for kernel, bias, relu in self._dense:
            if portable:
                hidden = tf.matmul(hidden, kernel, transpose_b=True)
            else:
                hidden = tf.transpose(tf.matmul(kernel, hidden, transpose_b=True))
            if bias is not None:
                hidden = tf.nn.bias_add(hidden, bias)
            if relu:
                hidden = tf.nn.relu(hidden)
        return hidden
