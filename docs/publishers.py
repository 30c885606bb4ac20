"""Which events each service publishes, read from the services' source (a static scan, no imports).

Services publish with `pixsim_runtime.broker.publish_event(broker, event)` and declare no FastStream
publishers, so the broker cannot tell. This scan follows each service's modules that call
`publish_event` or `publish_events`, and the package modules they import, and collects the event classes they use as
values (constructed, or chosen as the class to construct). Type tests (`isinstance`), parsing (`model_validate`), `case` patterns,
annotations and dictionary keys (a lookup by type, e.g. billing's entry kinds) are not publishing, so
they are ignored.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PUBLISH_FUNCTIONS = {"publish_event", "publish_events"}
#: Class methods that parse an event rather than make one to publish.
PARSING = {"model_validate", "model_validate_json"}


def _not_publishing(tree: ast.AST) -> set[int]:
    """ids of the nodes that only *name* a type: annotations, isinstance targets, match patterns."""
    skip: set[int] = set()

    def drop(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                drop(arg.annotation if arg is not None else None)
            drop(node.returns)
        elif isinstance(node, ast.AnnAssign):
            drop(node.annotation)
        elif isinstance(node, ast.MatchClass):
            drop(node.cls)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                drop(key)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2):
            drop(node.args[1])
        elif isinstance(node, ast.Attribute) and node.attr in PARSING:
            drop(node.value)  # `Event.model_validate(stored)` reads an event back; it publishes nothing
    return skip


def _used_names(tree: ast.AST, wanted: set[str]) -> set[str]:
    skip = _not_publishing(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in wanted:
            found.add(name)
    return found


def _local_imports(tree: ast.AST, modules: Iterable[str]) -> set[str]:
    known, found = set(modules), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names if alias.name in known)
    return found & known


def published_events(package_dir: Path, event_names: set[str]) -> set[str]:
    """The event class names the service in `package_dir` publishes."""
    modules = {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(package_dir.glob("*.py"))}
    todo = [name for name, tree in modules.items() if _used_names(tree, PUBLISH_FUNCTIONS)]
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(_local_imports(modules[name], modules))
    return set().union(*(_used_names(modules[name], event_names) for name in reached))
