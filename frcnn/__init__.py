"""frcnn: Faster R-CNN (Ren et al., 2015) 라이브러리. 패키지 지도와 가져오기 방향은 WORKSPACE.md."""
