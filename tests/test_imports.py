"""frcnn 의 가져오기 그래프 테스트 (AST): 모듈 사이에 순환이 없다. 함수 안의 가져오기도 간선으로 센다.

용어:
  간선 a → b: 모듈 a 의 어디에든 (함수 안 포함) `import b`, `from b import x`, `from pkg import b` 가 있다.
  `from pkg import name` 에서 name 이 모듈이면 pkg.name 으로, 아니면 pkg (그 __init__) 로 잇는다.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "frcnn"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _resolve(target, modules):
    """가장 긴 frcnn 모듈 이름 (frcnn.export.portable.X → frcnn.export.portable)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return None


def _targets(node, module, is_package):
    """가져오기 노드 하나가 가리키는 점 이름들 (상대 가져오기는 절대 이름으로)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph():
    """{모듈: {가져오는 frcnn 모듈}} (자기 자신, 자기 상위 패키지로의 간선은 뺀다)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path.name == "__init__.py"):
                    resolved = _resolve(target, modules)
                    if resolved and resolved != module and not module.startswith(resolved + "."):
                        edges.add(resolved)
        graph[module] = edges
    return graph


def find_cycle(graph):
    """순환 하나 (모듈 목록, 처음 = 끝) 또는 None. 반복 DFS (흰·회·검)."""
    state = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_find_cycle_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": set(), "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_function_level_imports_are_edges(tmp_path):
    source = "def f():\n    from frcnn.export import saved_model\n    return saved_model\n"
    node = ast.parse(source).body[0].body[0]
    assert "frcnn.export.saved_model" in _targets(node, "frcnn.export.portable", False)


def test_no_import_cycle_in_frcnn():
    graph = import_graph()
    assert "frcnn.export.detection" in graph["frcnn.export.portable"]  # 그래프가 실제 간선을 본다
    assert "frcnn.export.portable" in graph["frcnn.export.saved_model"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
