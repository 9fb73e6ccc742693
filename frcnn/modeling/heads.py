"""검출기 헤드: RoI 특징 → 검출기 몸통(fc6/fc7 또는 conv5) → C+1 클래스 로짓과 클래스별 박스 델타.

용어:
  N RoI 총수 (B·R), P RoI 출력 크기, Cf 특징 채널, D 몸통 출력 차원, C 클래스 수 (배경 0 제외).
  몸통(body)은 만들 때 받는다 (`backbones.build_box_head`, 내보내기에서는 절단 SVD 몸통).
"""

import keras
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

    def call(self, roi_features, training=False):
        # [N, D] 몸통 출력
        hidden = self.body(roi_features, training=training)
        class_logits = tf.cast(self.class_logits(hidden), tf.float32)
        box_deltas = tf.reshape(tf.cast(self.box_deltas(hidden), tf.float32),
                                [-1, self.num_classes + 1, 4])
        return class_logits, box_deltas
