"""`pixsim provider new`: write a new provider, folder or pip package, from the templates beside this module.

What it writes passes the conformance suite and runs generations against its own fake as it is; each
place the author fills in the real API is marked `# TODO(provider author): ...`.

    new_provider("lumen", kind="video")                    # providers/lumen/
    new_provider("lumen", kind="image", package=True)      # ./pixsim-provider-lumen/ (src layout)
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pixsim_contracts import OperationType, ProviderManifest

from ..registry import _entry_point_modules, _folder_modules

__all__ = ["ID_PATTERN", "KINDS", "Names", "ScaffoldError", "files_for", "new_provider", "render", "used_ids"]

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
MAX_ID_LENGTH = 64  # the gateway's bound on a provider id in a path
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: What each kind scaffolds: a text operation, and one that starts from a source image (file preparation).
KINDS: dict[str, list[OperationType]] = {
    "video": [OperationType.TEXT_TO_VIDEO, OperationType.IMAGE_TO_VIDEO],
    "image": [OperationType.TEXT_TO_IMAGE, OperationType.IMAGE_TO_IMAGE],
    "both": [
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.TEXT_TO_IMAGE,
        OperationType.IMAGE_TO_IMAGE,
    ],
}
_KIND_WORDS = {"video": "video", "image": "image", "both": "video and image"}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class ScaffoldError(ValueError):
    """The provider cannot be written as asked; the message says why."""


@dataclass(frozen=True)
class Names:
    """Every name a new provider needs, derived from its id (`my-lumen`)."""

    id: str

    @property
    def module(self) -> str:  # my_lumen: the folder, and the Python-safe form of the id
        return self.id.replace("-", "_")

    @property
    def title(self) -> str:  # My Lumen
        return " ".join(part.capitalize() for part in re.split(r"[-_]+", self.id) if part)

    @property
    def class_name(self) -> str:  # MyLumenProvider
        return self.title.replace(" ", "") + "Provider"

    @property
    def package(self) -> str:  # pixsim_provider_my_lumen
        return f"pixsim_provider_{self.module}"

    @property
    def dist(self) -> str:  # pixsim-provider-my-lumen
        return f"pixsim-provider-{self.id.replace('_', '-')}"

    @property
    def env_id(self) -> str:  # MY_LUMEN, as in PIXSIM_MY_LUMEN_BASE_URL (Provider.base_url's rule)
        return self.id.upper().replace("-", "_")

    @property
    def domain(self) -> str:  # my-lumen.example (a host name has no underscores)
        return f"{self.id.replace('_', '-')}.example"


def check_id(provider_id: str) -> None:
    if not ID_PATTERN.fullmatch(provider_id) or len(provider_id) > MAX_ID_LENGTH:
        raise ScaffoldError(
            f"provider id {provider_id!r} must match {ID_PATTERN.pattern} "
            f"(at most {MAX_ID_LENGTH} characters), e.g. 'lumen' or 'my-lumen'"
        )
    if keyword.iskeyword(Names(provider_id).module):
        raise ScaffoldError(
            f"provider id {provider_id!r} is a Python keyword; its folder could not be imported"
        )


def used_ids(providers_dir: Path | None) -> dict[str, str]:
    """Provider ids already taken -> where: every folder in `providers_dir` (enabled or not, loadable or not:
    a folder whose manifest cannot be imported is counted by its name) and every installed package."""
    candidates: list = []
    if providers_dir is not None and providers_dir.is_dir():
        candidates += _folder_modules(providers_dir)
    candidates += _entry_point_modules()
    taken: dict[str, str] = {}
    for name, origin, load in candidates:
        taken.setdefault(name, origin)
        try:
            manifest = getattr(load(), "manifest", None)
        except Exception:  # noqa: BLE001 - a provider that cannot load still holds its name
            manifest = None
        provider_id = (
            manifest.id
            if isinstance(manifest, ProviderManifest)
            else (manifest.get("id") if isinstance(manifest, dict) else None)
        )
        if isinstance(provider_id, str):
            taken.setdefault(provider_id, origin)
    return taken


def render(text: str, values: dict[str, str]) -> str:
    """`{{name}}` placeholders replaced; an unknown name is a bug in the templates."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise KeyError(f"template placeholder {{{{{match[1]}}}}} has no value")
        return values[match[1]]

    return _PLACEHOLDER.sub(value, text)


def _template(name: str, values: dict[str, str]) -> str:
    return render((TEMPLATES / f"{name}.tmpl").read_text(), values)


def _values(names: Names, kind: str, package: bool, here: str) -> dict[str, str]:
    operations = KINDS[kind]
    media = {op: "video" if "video" in op.value else "image" for op in operations}
    values = {
        "id": names.id,
        "module": names.module,
        "name": names.title,
        "class": names.class_name,
        "fake_class": names.class_name.removesuffix("Provider") + "FakeApi",
        "package": names.package,
        "dist": names.dist,
        "env_id": names.env_id,
        "domain": names.domain,
        "kind": kind,
        "kind_enum": kind.upper(),
        "kind_words": _KIND_WORDS[kind],
        "here": here,
        "unit": "package" if package else "folder",
        "operations": "".join(f'    OperationType.{op.name}: "{media[op]}",\n' for op in operations),
        "operation_values": "{" + ", ".join(f'"{op.value}": "{media[op]}"' for op in operations) + "}",
    }
    if package:
        values["conformance_where"] = "from tests/test_conformance.py"
        opener, call = "case_for_package", f'case_for_package("{names.package}.manifest")'
        imports = ""
    else:
        values["conformance_where"] = "from PixSim's tests/providers/test_conformance.py, for every folder"
        opener, call = "case_for_folder", "case_for_folder(Path(__file__).resolve().parent)"
        imports = "from pathlib import Path\n\n"
    values["opener_call"] = call
    values["imports"] = (
        f"{imports}import pytest\nfrom pixsim_provider_sdk import REFERENCE_PARAM, ProviderStatus\n"
        f"from pixsim_provider_sdk.testing.conformance import {opener}\n"
    )
    values["protocol"] = _template("protocol.md", values)
    return values


def files_for(
    provider_id: str, kind: str = "video", *, package: bool = False, here: str = "."
) -> dict[str, str]:
    """The files of a new provider, by path relative to the folder (or package) it goes in. `here` is how
    its README names that folder in commands."""
    if kind not in KINDS:
        raise ScaffoldError(f"kind {kind!r} must be one of {', '.join(KINDS)}")
    check_id(provider_id)
    names = Names(provider_id)
    values = _values(names, kind, package, here)
    code = {name: _template(f"{name}.py", values) for name in ("manifest", "adapter", "fake_api")}
    if not package:
        return {
            **{f"{name}.py": text for name, text in code.items()},
            f"test_{names.module}.py": _template("test_own.py", values),
            "README.md": _template("README.folder.md", values),
        }
    src = f"src/{names.package}"
    return {
        "pyproject.toml": _template("pyproject.toml", values),
        "README.md": _template("README.package.md", values),
        f"{src}/__init__.py": _template("__init__.py", values),
        **{f"{src}/{name}.py": text for name, text in code.items()},
        "tests/test_conformance.py": _template("test_conformance.py", values),
        f"tests/test_{names.module}.py": _template("test_own.py", values),
    }


def new_provider(
    provider_id: str,
    kind: str = "video",
    *,
    package: bool = False,
    directory: str | os.PathLike[str] | None = None,
    providers_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a new provider and return its folder: `<directory>/<id>/` (directory default `providers`), or
    with `package`, `<directory>/pixsim-provider-<id>/` (default: the current directory).

    Refused (`ScaffoldError`): an id that is not `^[a-z][a-z0-9_-]*$`, a target that exists, or an id that a
    provider folder (in `providers_dir`, default `directory` for a folder, else `PIXSIM_PROVIDERS_DIR` or
    `providers`) or an installed provider package already uses."""
    check_id(provider_id)
    names = Names(provider_id)
    parent = Path(directory if directory is not None else ("." if package else "providers"))
    target = parent / (names.dist if package else names.module)
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another id or remove it")
    if providers_dir is None:
        providers_dir = parent if not package else os.environ.get("PIXSIM_PROVIDERS_DIR", "providers")
    taken = used_ids(Path(providers_dir))
    clash = next((taken[name] for name in (provider_id, names.module) if name in taken), None)
    if clash is not None:
        raise ScaffoldError(f"provider id {provider_id!r} is already used by {clash}")
    files = files_for(provider_id, kind, package=package, here=str(target))
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    try:  # written aside, then moved into place in one step: never a half-written provider
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        staging.chmod(0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
