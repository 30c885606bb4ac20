"""docs/adding-providers.md is executed, block by block, so the guide cannot drift from the SDK.

Each fenced block's info string says what happens to it:

- ```` ```python file=<path> ```` / ```` ```toml file=<path> ````: appended, in order, to that file of the
  example; the Postcard folder so assembled passes the conformance suite and its own tests and runs
  generations through the whole pipeline; its package form is checked too;
- ```` ```python run ````: executed as it is, in the assembled example's root (environment restored after);
- ```` ```bash run ````: run with bash in a copy of that root, the workspace's venv first on PATH (`uv run
  CMD` runs CMD from it, as `uv run` does at the repo's root);
- ```` ```bash skip="why" ````: not run; the reason must say why.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import CallRates, ProviderManifest
from pixsim_provider_sdk import Provider, ProviderError
from pixsim_provider_sdk import __all__ as sdk_names
from pixsim_provider_sdk.params import SPEC_KEYS
from pixsim_provider_sdk.safe_fetch import ALLOW_HOSTS_ENV, host_port
from pixsim_provider_sdk.testing.conformance import ProviderConformance, case_for_folder
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_provider_sdk.testing.media import PNG_SIGNATURE
from pixsim_runtime.inprocess import serve
from support import api_client, create, run_pytest, wait_for, wait_ledger

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "adding-providers.md"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MODES = {"python": {"file", "run"}, "toml": {"file"}, "bash": {"run", "skip"}}
FOLDER = Path("providers/postcard")
PACKAGE = Path("pixsim-provider-postcard")
#: `uv run CMD` runs CMD from the venv that runs these tests; any other uv command is not the guide's to run.
UV_SHIM = 'uv() { if [ "$1" = run ]; then shift; "$@"; else echo "not run here: uv $*" >&2; return 1; fi; }\n'


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    lang: str
    attrs: dict[str, str]  # file=<path>, run (""), skip=<reason>
    body: str

    @property
    def mode(self) -> str:
        return next(iter(self.attrs), "")


def guide_blocks() -> list[Block]:
    text = GUIDE.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        lang, *rest = shlex.split(match["info"]) or [""]
        attrs = dict(word.partition("=")[::2] for word in rest)
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, lang, attrs, match["body"]))
    return blocks


def blocks_of(lang: str, mode: str) -> list[Block]:
    return [b for b in guide_blocks() if b.lang == lang and b.mode == mode]


# -- every block is accounted for -----------------------------------------------------------------------
def test_every_block_is_run_or_says_why_not():
    text = GUIDE.read_text()
    blocks = guide_blocks()
    assert sum(1 for line in text.splitlines() if line.startswith("```")) == 2 * len(blocks), (
        "an unpaired fence"
    )
    for block in blocks:
        where = f"docs/adding-providers.md:{block.line}"
        assert block.lang in MODES, f"{where}: a {block.lang or 'bare'!r} block; use python, toml or bash"
        assert len(block.attrs) == 1 and block.mode in MODES[block.lang], (
            f"{where}: a {block.lang} block needs exactly one of {sorted(MODES[block.lang])}, got {block.attrs}"
        )
        if block.mode == "skip":
            reason = block.attrs["skip"]
            assert len(reason.split()) >= 4, (
                f"{where}: skip= must say why the block is not run, got {reason!r}"
            )
        if block.mode == "file":
            path = Path(block.attrs["file"])
            assert not path.is_absolute() and ".." not in path.parts, where
            assert path.is_relative_to(FOLDER) or path.is_relative_to(PACKAGE), f"{where}: not the example's"
    files = {b.attrs["file"] for b in blocks if b.mode == "file"}
    assert {
        f"{FOLDER}/{name}" for name in ("manifest.py", "adapter.py", "fake_api.py", "test_postcard.py")
    } <= files


def test_the_guide_names_every_part_of_the_sdk_it_documents():
    """The members of the Provider interface, the manifest's fields, the call rates, the spec keys and the
    error classes: a new one without a word in the guide fails here."""
    prose = FENCE.sub("", GUIDE.read_text())
    quoted = " ".join(re.findall(r"`([^`]+)`", prose))
    names = [n for n in dir(Provider) if not n.startswith("_")]
    names += list(ProviderManifest.model_fields) + list(CallRates.model_fields) + sorted(SPEC_KEYS)
    names += [
        n
        for n in sdk_names
        if isinstance(getattr(sys.modules["pixsim_provider_sdk"], n), type)
        and issubclass(getattr(sys.modules["pixsim_provider_sdk"], n), ProviderError)
    ]
    names += [
        "latency",
        "quota",
        "rate_limit_every",
        "fail_submits",
        "fail_rate",
        "forbidden",
        "nsfw-output",
        "valid_raw_data()",
        "invalid_raw_data()",
        "PIXSIM_<ID>_BASE_URL",
        "make docs",
        "pixsim.providers",
    ]
    missing = [n for n in names if not re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", quoted)]
    assert not missing, f"not in the guide: {missing}"


def test_the_readme_points_at_the_guide():
    readme = (REPO / "README.md").read_text()
    assert "docs/adding-providers.md" in readme and "pixsim provider new" in readme


# -- the example, assembled ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the guide's `file=` blocks make, in a directory of their own."""
    root = tmp_path_factory.mktemp("guide-example")
    for block in guide_blocks():
        if block.mode == "file":
            path = root / block.attrs["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(("\n" if path.stat().st_size else "") + block.body)
    return root


@pytest.fixture(scope="module")
def shell_root(example: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A copy of the example, with the guide's `bash run` blocks run in it, in order."""
    root = tmp_path_factory.mktemp("guide-shell")
    shutil.copytree(example, root, dirs_exist_ok=True)
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("PIXSIM_PROVIDERS_DIR", None)
    runs = []
    for block in blocks_of("bash", "run"):
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", UV_SHIM + block.body],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        runs.append((block, run))
    return root, runs


def test_the_shell_blocks_run(shell_root: tuple[Path, list]):
    root, runs = shell_root
    assert runs, "the guide has no bash run block"
    for block, run in runs:
        assert run.returncode == 0, f"docs/adding-providers.md:{block.line}:\n{run.stdout}\n{run.stderr}"
    assert (root / "providers" / "lumen" / "manifest.py").is_file()  # what the quick start writes


@pytest.mark.parametrize("block", blocks_of("python", "run"), ids=lambda b: f"line{b.line}")
def test_the_python_blocks_run(block: Block, example: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(example)
    saved = dict(os.environ)
    code = compile("\n" * block.line + block.body, str(GUIDE), "exec")  # tracebacks name the guide's lines
    try:
        exec(code, {"__name__": f"guide_block_{block.line}"})  # noqa: S102 - the guide's own code is the test
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_guides_python_is_ruff_clean(example: Path, tmp_path: Path):
    for block in blocks_of("python", "run"):
        (tmp_path / f"guide_line{block.line}.py").write_text(block.body)
    ruff = Path(sys.executable).parent / "ruff"
    run = subprocess.run(
        [str(ruff), "check", "--config", str(REPO / "pyproject.toml"), str(example), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


class TestGuideExampleConformance(ProviderConformance):
    """The SDK's whole suite against the assembled Postcard folder and its fake."""

    @pytest.fixture
    async def conformance_case(self, example: Path):
        async with case_for_folder(example / FOLDER) as case:
            yield case


def test_the_example_folders_own_tests_and_its_package_tests_pass(shell_root: tuple[Path, list]):
    """test_postcard.py with PixSim's pytest config, and the package's test_conformance.py against the
    package built by the guide's shell block (its first checks: the whole suite runs above)."""
    root, _ = shell_root
    suite = f"{root / PACKAGE / 'tests' / 'test_conformance.py'}::TestPostcardConformance"
    run = run_pytest(
        str(root / FOLDER),
        f"{suite}::test_manifest_is_valid",
        f"{suite}::test_parameter_spec_is_well_formed",
        cwd=root,
        pythonpath=[root / PACKAGE / "src"],
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].startswith("4 passed"), run.stdout[-2000:]


def test_the_package_declares_the_entry_point(shell_root: tuple[Path, list]):
    root, _ = shell_root
    project = tomllib.loads((root / PACKAGE / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pixsim.providers"] == {
        "postcard": "pixsim_provider_postcard.manifest"
    }
    (packaged,) = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(p.name for p in (root / PACKAGE / packaged).glob("*.py")) == [
        "__init__.py",
        "adapter.py",
        "fake_api.py",
        "manifest.py",
    ]


# -- the example through the pipeline --------------------------------------------------------------------
def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.system
async def test_the_example_runs_generations_through_the_pipeline(example: Path, fresh_servers, monkeypatch):
    providers = example / "providers"
    fake = load_fake(providers / "postcard")(latency=0.3)
    monkeypatch.setenv("PIXSIM_POSTCARD_BASE_URL", fake.start("127.0.0.1", 0))
    monkeypatch.setenv(
        ALLOW_HOSTS_ENV, host_port(fake.url), prepend=","
    )  # the first card is the second's photo
    settings = service_settings(fresh_servers, db="guide", providers_dir=providers)
    try:
        async with (
            serve(*build_apps(settings, TracerProvider(), providers_dir=providers)) as served,
            api_client(served[0].url) as api,
        ):
            assert [p["id"] for p in (await api.get("/api/v1/providers")).json()["items"]] == ["postcard"]
            detected = await api.get(
                "/api/v1/providers/detect", params={"url": "https://www.postcard.example/c/1"}
            )
            assert detected.json()["id"] == "postcard"
            account = await api.post(
                "/api/v1/accounts",
                json={
                    "provider_id": "postcard",
                    "raw_data": fake.valid_raw_data(),
                    "credits": {"stamps": 10},
                },
            )
            assert account.status_code == 201, account.text

            first = await create(
                api,
                {"prompt": "a harbour at dawn", "size": "768x512"},
                provider="postcard",
                operation="text_to_image",
            )
            drawn = await wait_for(api, first["id"])
            assert drawn["status"] == "completed" and drawn["account_id"] == account.json()["id"], drawn
            assert _png_size((await api.get(drawn["result"]["image_url"])).content) == (768, 512)
            entries = await wait_ledger(
                fresh_servers.mongo_url, "guide", first["id"], {"reserved", "charged"}
            )
            assert [(e["kind"], e["credit_type"], e["amount"]) for e in entries] == [
                ("reserved", "stamps", 2),
                ("charged", "stamps", 2),
            ]

            second = await create(
                api,
                {"prompt": "as a postcard", "image_url": drawn["result"]["image_url"]},
                provider="postcard",
                operation="image_to_image",
            )
            redrawn = await wait_for(api, second["id"])
            assert redrawn["status"] == "completed", redrawn
            assert _png_size((await api.get(redrawn["result"]["image_url"])).content) == (768, 512)
        submits = [r for r in fake.requests if r.method == "POST" and r.path == "/v1/cards"]
        assert [r.json["ref"] for r in submits] == [first["id"], second["id"]]  # the generation ids
    finally:
        fake.stop()
