"""Which events each service publishes, read from the services' source (a static scan, no imports).

Services publish with `pixsim_runtime.broker.publish_event(broker, event)` (or through
`pixsim_runtime.outbox.flush`) and declare no FastStream publishers, so the broker cannot tell. This scan
follows each service's modules that call `publish_event`, `publish_events` or `flush`, and the package modules they import, and collects the event classes they use as
values (constructed, or chosen as the class to construct). Type tests (`isinstance`), parsing (`model_validate`), `case` patterns,
annotations and dictionary keys (a lookup by type, e.g. billing's entry kinds) are not publishing, so
they are ignored.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

#: `outbox.flush` publishes what a module stored in an outbox (`pixsim_runtime.outbox`).
PUBLISH_FUNCTIONS = {"publish_event", "publish_events", "flush"}
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
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass")
            and len(node.args) == 2
        ):
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
        name = (
            node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        )
        if name in wanted:
            found.add(name)
    return found


def _local_imports(tree: ast.AST, package: str, modules: Iterable[str]) -> set[str]:
    """The package's modules that a module of `package` (dotted, "" for the top) imports relatively."""
    known, found = set(modules), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".") if package else []
            base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(target)
            found.update(f"{target}.{alias.name}" if target else alias.name for alias in node.names)
    return found & known


def _modules(package_dir: Path) -> dict[str, tuple[str, ast.AST]]:
    """Every module of the package, by dotted name ("api.generations"; a subpackage's `__init__` is "api"),
    with the package its relative imports start from."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
            package = ".".join(parts)
        else:
            package = ".".join(parts[:-1])
        modules[".".join(parts)] = (package, ast.parse(path.read_text(), str(path)))
    return modules


def published_events(package_dir: Path, event_names: set[str]) -> set[str]:
    """The event class names the service in `package_dir` publishes."""
    modules = _modules(package_dir)
    todo = [name for name, (_, tree) in modules.items() if _used_names(tree, PUBLISH_FUNCTIONS)]
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            package, tree = modules[name]
            todo.extend(_local_imports(tree, package, modules))
    return set().union(*(_used_names(modules[name][1], event_names) for name in reached))
