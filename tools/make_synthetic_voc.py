"""합성 VOC2007 형식 표본 데이터셋을 만든다.

OUTPUT/VOC2007/{JPEGImages,Annotations,ImageSets/Main} 에 JPEG, VOC XML, 분할 파일
(trainval.txt, train.txt, val.txt, test.txt)을 쓴다. 같은 --seed 는 바이트 단위로 같은
파일을 만든다.

사용 예:
    python -m tools.make_synthetic_voc --output_dir=data/synthetic
"""

import sys

from absl import app, flags

from tools import synthetic_voc

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None,
                    "출력 루트 디렉터리. 그 아래 VOC2007/ 을 만든다(없으면 디렉터리도 만든다).")
flags.DEFINE_integer("num_trainval", 400,
                     "trainval 이미지 수(>= 2). 절반씩 train.txt / val.txt 로도 나눈다.")
flags.DEFINE_integer("num_test", 200, "test 이미지 수(>= 1).")
flags.DEFINE_integer("seed", 0, "난수 seed(>= 0). 같은 seed 면 바이트 단위로 같은 데이터셋.")
flags.DEFINE_bool("overwrite", False,
                  "비어 있지 않은 OUTPUT/VOC2007 이 이미 있으면 바꿔 쓴다. 끄면 그런 경우 오류로 끝난다.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    """플래그를 검사하고 synthetic_voc.generate 를 부른다."""
    if len(argv) > 1:
        raise app.UsageError(f"알 수 없는 위치 인자: {' '.join(argv[1:])}")
    try:
        voc_dir = synthetic_voc.generate(FLAGS.output_dir, FLAGS.num_trainval, FLAGS.num_test,
                                         FLAGS.seed, progress=True, overwrite=FLAGS.overwrite)
    except ValueError as error:
        # 개수·seed 범위 검사는 라이브러리 한 곳에서 한다; 플래그 오류로 알린다.
        raise app.UsageError(f"잘못된 플래그: {error}") from error
    except OSError as error:
        print(f"make_synthetic_voc: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"합성 VOC 데이터셋을 썼다: {voc_dir} "
          f"(trainval {FLAGS.num_trainval}, test {FLAGS.num_test}, seed {FLAGS.seed})")


def run():
    """console script 진입점."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
