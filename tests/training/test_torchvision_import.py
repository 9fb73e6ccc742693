"""torchvision 가중치 가져오기 (`frcnn.training.torchvision_import`) — torch 가 없으면 건너뛴다.

기대값은 torchvision 자신에서 온다: 무작위 (다시 뽑은, 묶이지 않은) 가중치의 torchvision `FasterRCNN` (ResNet-18
FPN, COCO 91 칸) 을 state dict 로 저장 → 가져오기 (구조 모델의 `load_state_dict`, 매핑, 실행 디렉터리) →
`load_trained_model` 로 복원한 모델의 검출이 torchvision 의 검출 (이름 있는 80 범주만) 과 같다.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.export import detection
from frcnn.export import signature
from frcnn.modeling import fpn_backbones
from frcnn.training import init_from
from frcnn.training import torchvision_import
from frcnn.training import trainer
from tests import torch_reference
from tests.testing import REPO_ROOT, rest_predict

MIN_SIZE, MAX_SIZE = 128, 200
# 네 크기 (H, W): 가로형·세로형, 32 의 배수가 아닌 것 (289×385 는 128×171 로 줄어든다)
IMAGE_SHAPES = ((97, 130), (150, 101), (289, 385), (385, 289))
# 예측기·RPN 가중치의 표준편차와 배경 로짓 bias: 이미지마다 이름 있는 검출 29–69 개, 모두 100 개 상한 아래
PREDICTOR_STD = {"v1": 0.05, "v2": 0.03}
BACKGROUND_BIAS = {"v1": 5.0, "v2": 3.6}
# 'N/A' 칸의 로짓 bias 를 올려 torchvision 이 그 칸도 검출하게 한다 (가져온 모델은 보고하지 않아야 한다)
NOT_AVAILABLE_BIAS = {"v1": 1.0, "v2": 0.6}


def reference_detector(variant, seed=0):
    """torchvision FasterRCNN (ResNet-18 FPN, 91 칸): v1 FrozenBN eps 0 (COCO v1 처럼), v2 BN·RPN 합성곱 2·4conv."""
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection import faster_rcnn
    from torchvision.models.detection import rpn as tv_rpn

    torch.manual_seed(seed)
    extra = {}
    if variant == "v2":
        extra = {"rpn_head": tv_rpn.RPNHead(256, 3, conv_depth=2),
                 "box_head": faster_rcnn.FastRCNNConvFCHead((256, 7, 7), [256] * 4, [1024],
                                                            norm_layer=torch.nn.BatchNorm2d)}
        torch_reference.randomize_(extra["box_head"], seed=seed + 6)
    backbone = torch_reference.reference_backbone(18, variant, epsilon=0.0, seed=seed + 3)
    model = faster_rcnn.FasterRCNN(backbone, num_classes=91, min_size=MIN_SIZE, max_size=MAX_SIZE,
                                   rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, **extra).eval()
    return untie_predictors_(model, PREDICTOR_STD[variant], BACKGROUND_BIAS[variant],
                             NOT_AVAILABLE_BIAS[variant], seed + 4)


def untie_predictors_(model, std, background_bias, not_available_bias, seed):
    """RPN 헤드·예측기를 N(0, std) 로 다시 뽑고, 배경·N/A 칸의 로짓 bias 를 정한다 (제자리, model 을 돌려준다)."""
    torch, _ = torch_reference.import_torchvision()
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in (model.rpn.head, model.roi_heads.box_predictor):
            for parameter in module.parameters():
                parameter.copy_(torch.randn(parameter.shape) * std)
        bias = model.roi_heads.box_predictor.cls_score.bias
        bias[0] = background_bias
        categories = torchvision_import.coco_categories()
        for index in range(1, len(categories)):
            if categories[index] == torchvision_import.NOT_A_CLASS:
                bias[index] += not_available_bias
    return model


def imported_config(variant):
    """가져온 실행의 설정 (ResNet-18, 작은 크기), 클래스 80 개, 그 행."""
    classes, slots = torchvision_import.coco_classes(torchvision_import.coco_categories())
    arch = "fasterrcnn_resnet50_fpn" if variant == "v1" else "fasterrcnn_resnet50_fpn_v2"
    config = torchvision_import.detector_config(
        arch, overrides=f"backbone.depth=18,input.min_size={MIN_SIZE},input.max_size={MAX_SIZE},"
                        "rpn.test_pre_nms_top_k=300,rpn.test_post_nms_top_k=100", class_slots=slots)
    return config, classes, slots


def import_reference(reference, variant, tmp_path, seed=1):
    """reference 의 state dict → .pth → 구조 모델로 읽기 → 매핑 → 실행 디렉터리 (경로, 클래스, 행)."""
    torch, _ = torch_reference.import_torchvision()
    path = str(tmp_path / f"{variant}.pth")
    torch.save(reference.state_dict(), path)
    state = torchvision_import.read_state(reference_detector(variant, seed=seed), path)
    config, classes, slots = imported_config(variant)
    model = torchvision_import.build_detector(config, classes, state, path)
    model_dir = str(tmp_path / f"run_{variant}")
    torchvision_import.write_run(model_dir, model, config, classes, {"file": path})
    return model_dir, classes, slots


def torchvision_detections(reference, image, slots):
    """torchvision 의 검출 중 이름 있는 칸만: (박스 [n, 4] yx 픽셀, 점수, 우리 라벨), 그리고 N/A 검출 수."""
    torch, _ = torch_reference.import_torchvision()
    with torch.no_grad():
        target = reference([torch.from_numpy(image).permute(2, 0, 1).float() / 255.0])[0]
    labels = target["labels"].numpy()
    named = np.isin(labels, slots)
    ours = np.searchsorted(slots, labels[named]) + 1
    return (target["boxes"].numpy()[named][:, [1, 0, 3, 2]], target["scores"].numpy()[named], ours,
            int((~named).sum()), len(labels))


def assert_same_detections(outputs, expected, shape):
    """한 장의 시그니처 출력 (numpy dict, 배치 1) 이 torchvision 의 이름 있는 검출과 같다 (10 개 이상)."""
    boxes, scores, labels, _, total = expected
    count = int(outputs["num_detections"][0])
    assert count == len(scores) >= 10, (shape, count, len(scores))
    assert total < 100  # torchvision 의 100 개 상한이 N/A 검출 때문에 이름 있는 검출을 밀어내지 않았다
    actual_scores = np.asarray(outputs["detection_scores"][0, :count])
    np.testing.assert_allclose(actual_scores, scores, atol=1e-4)
    actual_boxes = np.asarray(outputs["detection_boxes"][0, :count]) * np.tile(shape, 2)
    torch_reference.assert_same_ranking(actual_boxes, actual_scores, boxes, scores,
                                        np.asarray(outputs["detection_classes"][0, :count]), labels, tie=1e-4)


def random_images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8) for shape in IMAGE_SHAPES]


@pytest.fixture(scope="module", params=["v1", "v2"])
def imported(request, tmp_path_factory):
    """무작위 torchvision 검출기를 가져온 것: (variant, 실행 디렉터리, 클래스, 행, 이미지들, torchvision 의 검출들)."""
    variant = request.param
    reference = reference_detector(variant)
    root = tmp_path_factory.mktemp(f"import_{variant}")
    model_dir, classes, slots = import_reference(reference, variant, root)
    images = random_images()
    expected = [torchvision_detections(reference, image, slots) for image in images]
    assert sum(item[3] for item in expected) > 0  # torchvision 은 N/A 칸도 검출한다 (우리는 보고하지 않아야 한다)
    return variant, model_dir, classes, slots, images, expected


def test_imported_run_detects_like_torchvision(imported):
    _, model_dir, classes, slots, images, expected = imported
    model, config, run_classes, _ = trainer.load_trained_model(model_dir)
    assert run_classes == classes and len(classes) == 80 and config.detection.class_slots == slots
    assert model.detector_head.class_logits.kernel.shape[-1] == 91
    module = detection.DetectionModule(model, config, classes)
    for image, want in zip(images, expected):
        outputs = {key: value.numpy()
                   for key, value in module.detect_images(tf.constant(image[None])).items()}
        assert_same_detections(outputs, want, image.shape[:2])
        count = int(outputs["num_detections"][0])
        names = [name.decode() for name in outputs["detection_class_names"][0, :count]]
        assert names == [classes[label - 1] for label in want[2]]


@pytest.mark.slow  # tools.export (SavedModel, LiteRT, ONNX) 을 subprocess 로
def test_exported_run_detects_like_torchvision_in_every_format(imported, tmp_path):
    """가져온 실행 → tools/export → SavedModel serving_default, LiteRT, ONNX 가 torchvision 과 같은 검출."""
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    onnxruntime = pytest.importorskip("onnxruntime")
    _, model_dir, _, _, images, expected = imported
    export_dir = str(tmp_path / "export")
    result = subprocess.run([sys.executable, "-m", "tools.export", f"--model_dir={model_dir}",
                             f"--export_dir={export_dir}", "--formats=saved_model,tflite,onnx"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    litert = interpreter.Interpreter(model_path=os.path.join(export_dir, signature.TFLITE_FILE))
    litert_runner = litert.get_signature_runner("serving_default")
    session = onnxruntime.InferenceSession(os.path.join(export_dir, signature.ONNX_FILE),
                                           providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    runners = {
        "saved_model": lambda image: {key: value.numpy()
                                      for key, value in serving(images=tf.constant(image)).items()},
        "litert": lambda image: litert_runner(images=image),
        "onnx": lambda image: dict(zip(names, session.run(None, {"images": image}))),
    }
    for image, want in zip(images, expected):
        for kind, run in runners.items():
            try:
                assert_same_detections(run(image[None]), want, image.shape[:2])
            except AssertionError as error:
                raise AssertionError(f"{kind} {image.shape}: {error}") from None
    _detect_and_serve_like_torchvision(export_dir, images[2], expected[2], tmp_path)


def _detect_and_serve_like_torchvision(export_dir, image, want, tmp_path):
    """가져온 모델의 내보낸 디렉터리를 tools/detect (PNG 파일) 와 tools/serve (REST, serve_bytes) 로 돌려도
    torchvision 의 이름 있는 검출 (같은 수, 같은 클래스 이름, 점수 1e-4) 이 나온다."""
    from PIL import Image

    path = str(tmp_path / "image.png")
    Image.fromarray(image).save(path)
    _, scores, labels, _, _ = want
    classes, _ = torchvision_import.coco_classes(torchvision_import.coco_categories())
    names = [classes[label - 1] for label in labels]
    result = subprocess.run([sys.executable, "-m", "tools.detect", f"--saved_model={export_dir}",
                             f"--images={path}", f"--output_dir={tmp_path / 'drawn'}", "--score_threshold=0"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "drawn" / "detections.json") as handle:
        written = json.load(handle)["images"][0]["detections"]
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose([item["score"] for item in written], scores[order], atol=1e-4)
    assert sorted(item["class_name"] for item in written) == sorted(names)
    served = rest_predict(export_dir, path, model_name="coco")
    count = int(served["num_detections"])
    assert count == len(scores)
    np.testing.assert_allclose(served["detection_scores"][:count], scores, atol=1e-4)
    assert sorted(served["detection_class_names"][:count]) == sorted(names)


def test_init_from_reads_the_coco_rows_of_an_imported_run(imported):
    """--init_from 원본으로서 가져온 실행: 클래스 k 의 예측기 행은 class_slots[k−1] (COCO 범주 id)."""
    _, model_dir, classes, slots, _, _ = imported
    source = init_from.load_source(model_dir)
    assert source.classes == classes and source.class_rows == slots
    assert dict(zip(classes, source.class_rows))["toothbrush"] == 90


def test_v1_default_bn_eps_is_zero_and_v2_is_torchvision_default():
    assert imported_config("v1")[0].backbone.norm_epsilon == 0.0
    assert imported_config("v2")[0].backbone.norm_epsilon == 1e-5
    config = torchvision_import.detector_config("fasterrcnn_resnet50_fpn", bn_eps=1e-5)
    assert config.backbone.norm_epsilon == 1e-5 and config.backbone.weights == "checkpoint"


def _old_key_names(state):
    """torchvision 0.x 의 옛 이름 (RPNHead·FPN 판 1): conv.0.0.* → conv.*, inner/layer_blocks.i.0.* → ….i.*;
    판 번호 메타데이터 없는 평범한 dict (옛 파일처럼)."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        for block in ("inner_blocks", "layer_blocks"):
            for index in range(4):
                key = key.replace(f"fpn.{block}.{index}.0.", f"fpn.{block}.{index}.")
        renamed[key] = value
    return renamed


def test_old_key_names_read_the_same(tmp_path):
    torch, _ = torch_reference.import_torchvision()
    reference = reference_detector("v1")
    state = reference.state_dict()
    old = _old_key_names(state)
    assert "rpn.head.conv.weight" in old and "backbone.fpn.inner_blocks.0.weight" in old
    paths = {name: str(tmp_path / f"{name}.pth") for name in ("new", "old")}
    torch.save(state, paths["new"])
    torch.save(old, paths["old"])
    new_state = torchvision_import.read_state(reference_detector("v1", seed=1), paths["new"])
    old_state = torchvision_import.read_state(reference_detector("v1", seed=2), paths["old"])
    assert new_state.keys() == old_state.keys()
    for key, value in new_state.items():
        np.testing.assert_array_equal(old_state[key], value, err_msg=key)


@pytest.fixture(scope="module")
def v1_state(tmp_path_factory):
    """진짜 fasterrcnn_resnet50_fpn 구조의 (기본 초기화) state dict."""
    torch_reference.import_torchvision()
    return torchvision_import.structure_model("fasterrcnn_resnet50_fpn").state_dict()


@pytest.mark.parametrize("change, named", [
    ("missing", "roi_heads.box_head.fc7.bias"),
    ("extra", "roi_heads.box_head.fc8.weight"),
    ("mis-shaped", "rpn.head.cls_logits.weight"),
])
def test_bad_state_dict_fails_naming_the_tensor_and_writes_nothing(v1_state, change, named, tmp_path):
    torch, _ = torch_reference.import_torchvision()
    state = dict(v1_state)
    if change == "missing":
        del state[named]
    elif change == "extra":
        state[named] = torch.zeros(3, 3)
    else:
        state[named] = torch.zeros(5, 256, 1, 1)
    path = str(tmp_path / "bad.pth")
    torch.save(state, path)
    model_dir = str(tmp_path / "run")
    with pytest.raises(ValueError, match=named.replace(".", r"\.")) as error:
        torchvision_import.import_detector("fasterrcnn_resnet50_fpn", model_dir, weights_file=path)
    assert change in str(error.value) or "unexpected" in str(error.value)
    assert not os.path.exists(model_dir) and os.listdir(tmp_path) == ["bad.pth"]


def test_mapping_names_model_variables_the_source_lacks(tmp_path):
    """구조 모델을 지나지 않은 상태 (매핑 검사만): 빠진 모듈은 설정되지 않은 우리 변수로 밝혀진다."""
    reference = reference_detector("v2")
    state = {key: value.numpy() for key, value in reference.state_dict().items()
             if not key.startswith("roi_heads.box_head.2.")}
    config, classes, _ = imported_config("v2")
    with pytest.raises(ValueError, match=r"model variables missing from the source: .*2_0/kernel"):
        torchvision_import.build_detector(config, classes, state, "state")


def test_resnet50_backbone_weights_give_torchvision_features(tmp_path):
    """--arch=resnet50: ImageNet ResNet-50 (무작위 BN) → resnet_body.npz → resnet50_fpn 의 몸통이 torchvision 의
    layer1–layer4 출력과 같은 C2–C5 를 낸다 (FrozenBN eps 1e-5, torchvision 의 Faster R-CNN 백본처럼)."""
    torch, torchvision = torch_reference.import_torchvision()
    from torchvision.models import _utils
    from torchvision.ops import misc

    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(norm_layer=misc.FrozenBatchNorm2d)
    torch_reference.randomize_(resnet, seed=1)
    path = str(tmp_path / "resnet50.pth")
    torch.save(resnet.state_dict(), path)
    model_dir = str(tmp_path / "resnet50")
    source = torchvision_import.import_backbone(model_dir, path)
    assert source["arch"] == "resnet50" and not source["matches_published"]
    assert sorted(os.listdir(model_dir)) == [fpn_backbones.BODY_WEIGHTS_FILE, torchvision_import.SOURCE_FILE]
    config = config_lib.build_config("resnet50_fpn", f"backbone.weights={model_dir}")
    body = fpn_backbones.build_backbone(config).features.get_layer("body")
    images = torch_reference.random_images(shape=(1, 3, 64, 96))
    layers = _utils.IntermediateLayerGetter(resnet.eval(), {f"layer{k}": str(k) for k in range(1, 5)})
    with torch.no_grad():
        expected = layers(torch.from_numpy(images))
    for level, actual in enumerate(body(torch_reference.nhwc(torch.from_numpy(images)))):
        torch_reference.assert_close_relative(actual, torch_reference.nhwc(expected[str(level + 1)]))


# 진짜 구조 (ResNet-50) 의 가중치 풀기: (예측기·RPN 표준편차, 배경 bias, N/A bias)
REAL_UNTIE = {"fasterrcnn_resnet50_fpn": (0.2, 0.3, 1.0), "fasterrcnn_resnet50_fpn_v2": (0.05, -0.8, -0.1)}
FPN_SCALE = 64.0
SMALL_OVERRIDES = (f"input.min_size={MIN_SIZE},input.max_size={MAX_SIZE},rpn.test_pre_nms_top_k=300,"
                   "rpn.test_post_nms_top_k=100")


def real_reference(arch, seed=0):
    """torchvision 의 빌더 그대로 (weights=None, 91 칸) 에 무작위 BN·bias·예측기. v1 은 BN eps 0 (COCO v1 의
    overwrite_eps: 평가 모드 BatchNorm2d eps 0 = FrozenBatchNorm2d eps 0)."""
    torch, torchvision = torch_reference.import_torchvision()
    torch.manual_seed(seed)
    model = getattr(torchvision.models.detection, arch)(
        weights=None, weights_backbone=None, num_classes=91, min_size=MIN_SIZE, max_size=MAX_SIZE,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100).eval()
    torch_reference.randomize_(model, seed + 1)
    if arch == "fasterrcnn_resnet50_fpn":
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eps = 0.0
    # 무작위 ResNet-50 의 FPN 출력은 표준편차 ~75: 마지막 층 (v1 합성곱, v2 BN) 의 값을 줄여 ~1 로 (헤드의 로짓이
    # 포화되어 점수가 1.0 으로 묶이지 않게)
    with torch.no_grad():
        for block in model.backbone.fpn.layer_blocks:
            for parameter in block[-1].parameters():
                parameter /= FPN_SCALE
    return untie_predictors_(model, *REAL_UNTIE[arch], seed + 4)


@pytest.mark.slow  # 진짜 ResNet-50 구조 두 개, tools.import_weights 를 subprocess 로
@pytest.mark.parametrize("arch", sorted(REAL_UNTIE))
def test_import_weights_tool_on_the_real_architecture(arch, tmp_path):
    """torchvision 빌더 그대로의 모델 (무작위) → .pth → `tools.import_weights --weights_file` → 실행 디렉터리의 모델이
    torchvision 과 같은 검출; run.json 에 출처 기록 (게시된 해시와 다르다는 경고) 과 라벨 → COCO 범주 id 표."""
    torch, _ = torch_reference.import_torchvision()
    reference = real_reference(arch)
    path, model_dir = str(tmp_path / "weights.pth"), str(tmp_path / "run")
    torch.save(reference.state_dict(), path)
    result = subprocess.run([sys.executable, "-m", "tools.import_weights", "--source=torchvision",
                             f"--arch={arch}", f"--weights_file={path}", f"--model_dir={model_dir}",
                             f"--params_override={SMALL_OVERRIDES}"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning" in result.stderr and "not torchvision's published" in result.stderr
    with open(os.path.join(model_dir, "run.json")) as handle:
        run_info = json.load(handle)
    assert run_info["source"]["arch"] == arch and not run_info["source"]["matches_published"]
    assert len(run_info["source"]["sha256"]) == 64
    classes, slots = torchvision_import.coco_classes(torchvision_import.coco_categories())
    assert run_info["classes"] == list(classes)
    assert run_info["source"]["coco_category_ids"] == dict(zip(map(str, range(1, 81)), slots))
    model, config, _, _ = trainer.load_trained_model(model_dir)
    module = detection.DetectionModule(model, config, classes)
    for image in random_images():
        outputs = {key: value.numpy()
                   for key, value in module.detect_images(tf.constant(image[None])).items()}
        assert_same_detections(outputs, torchvision_detections(reference, image, slots), image.shape[:2])


def test_missing_torch_is_one_line_naming_the_extra(monkeypatch):
    """torch 가 없으면 (여기서는 sys.modules 로 막는다) `[torch]` 추가 묶음을 밝히는 한 줄 ImportError."""
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError) as error:
        torchvision_import.import_torch()
    message = str(error.value)
    assert "\n" not in message and ".[torch]" in message and "torch" in message
