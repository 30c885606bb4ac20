"""`pixsim provider new` (pixsim_provider_sdk.scaffold): what it writes passes the conformance suite, its own
tests and ruff, and runs a generation through the whole pipeline, as a folder and as a pip package; and it
refuses a bad id, an existing folder and an id already in use, writing nothing."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_gateway.cli import app
from pixsim_provider_sdk.scaffold import KINDS, ScaffoldError, new_provider
from pixsim_provider_sdk.testing.cases import load_folder_provider
from pixsim_provider_sdk.testing.checks import manifest_problems, spec_problems
from pixsim_provider_sdk.testing.conformance import ProviderConformance, case_for_folder, case_for_package
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_runtime.inprocess import serve
from support import api_client, create, run_pytest, wait_for, wait_ledger
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FOLDER_ID, PACKAGE_ID = "my-lumen", "pinhole"  # a hyphen: the folder is my_lumen, the env var MY_LUMEN
PACKAGE = "pixsim_provider_pinhole"


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of every kind's provider, and a package; the same root for the whole module."""
    root = tmp_path_factory.mktemp("scaffold")
    new_provider(FOLDER_ID, "both", directory=root / "providers")
    for kind in ("video", "image"):
        new_provider(f"only-{kind}", kind, directory=root / "kinds")
    new_provider(PACKAGE_ID, "image", package=True, directory=root, providers_dir=root / "providers")
    return root


@pytest.fixture(scope="module")
def package_on_path(scaffolded: Path):
    """The package's src on sys.path (what `pip install -e` would do), for this module only."""
    src = str(scaffolded / "pixsim-provider-pinhole" / "src")
    sys.path.insert(0, src)
    importlib.invalidate_caches()
    yield scaffolded
    sys.path.remove(src)
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


# -- refusals -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["Lumen", "1lumen", "lu.men", "lu men", "", "-x", "x" * 65, "class"])
def test_an_id_that_is_not_a_provider_id_is_refused(tmp_path: Path, bad: str):
    with pytest.raises(ScaffoldError, match="provider id"):
        new_provider(bad, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_left_alone(tmp_path: Path):
    first = new_provider("lumen", directory=tmp_path)
    before = {p: p.read_bytes() for p in first.iterdir()}
    with pytest.raises(ScaffoldError, match="already exists"):
        new_provider("lumen", "image", directory=tmp_path)
    assert {p: p.read_bytes() for p in first.iterdir()} == before
    with pytest.raises(ScaffoldError, match="already exists"):
        new_provider("sim", directory=REPO / "providers")


def test_an_id_already_used_is_refused(tmp_path: Path):
    new_provider("lumen", directory=tmp_path).rename(tmp_path / "renamed")
    with pytest.raises(ScaffoldError, match=r"'lumen' is already used by .*renamed"):
        new_provider("lumen", directory=tmp_path)  # no folder of that name, but a manifest with that id
    with pytest.raises(ScaffoldError, match="'sora' is already used"):
        new_provider("sora", package=True, directory=tmp_path, providers_dir=REPO / "providers")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["renamed"]  # nothing half-written either


def test_the_cli_writes_a_provider_and_refuses_with_exit_code_2(tmp_path: Path):
    runner = CliRunner()
    done = runner.invoke(app, ["provider", "new", "lumen", "--kind", "image", "--dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert f"wrote {tmp_path / 'lumen'}/" in done.output and "TODO(provider author)" in done.output
    assert load_folder_provider(tmp_path / "lumen").manifest.kind.value == "image"
    again = runner.invoke(app, ["provider", "new", "lumen", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["provider", "new", "Lumen", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and "must match" in bad.output


# -- what it writes -------------------------------------------------------------------------------------
def test_every_kind_declares_a_valid_manifest_and_spec_and_marks_what_to_fill_in(scaffolded: Path):
    folders = [scaffolded / "providers" / "my_lumen", *(scaffolded / "kinds").iterdir()]
    for folder in folders:
        provider = load_folder_provider(folder)
        assert not manifest_problems(provider) + spec_problems(provider), folder
        kind = provider.manifest.kind.value
        assert provider.supported_operations == KINDS[kind]
        assert "TODO(provider author)" in (folder / "adapter.py").read_text()
        assert "TODO(provider author)" in (folder / "fake_api.py").read_text()


def test_what_it_writes_is_ruff_clean(scaffolded: Path):
    run = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "--config", str(REPO / "pyproject.toml"), str(scaffolded)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_package_declares_its_entry_point(scaffolded: Path):
    project = tomllib.loads((scaffolded / "pixsim-provider-pinhole" / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pixsim.providers"] == {PACKAGE_ID: f"{PACKAGE}.manifest"}
    (packaged,) = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert (scaffolded / "pixsim-provider-pinhole" / packaged / "manifest.py").is_file()


def test_its_own_tests_pass_as_written(package_on_path: Path):
    """The folder's test file (with PixSim's pytest config) and the package's tests/, the conformance
    classes left out (they run in-process below)."""
    root = package_on_path
    run = run_pytest(
        "-k",
        "not Conformance",
        str(root / "providers" / "my_lumen"),
        str(root / "pixsim-provider-pinhole" / "tests"),
        cwd=root,
        pythonpath=[root / "pixsim-provider-pinhole" / "src"],
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].startswith("4 passed"), run.stdout[-2000:]


# -- the conformance suite, on the folder and on the package ---------------------------------------------
class TestScaffoldedFolderConformance(ProviderConformance):
    """Kind `both`: every operation the scaffold knows, file preparation included."""

    @pytest.fixture
    async def conformance_case(self, scaffolded: Path):
        async with case_for_folder(scaffolded / "providers" / "my_lumen") as case:
            yield case


class TestScaffoldedPackageConformance(ProviderConformance):
    @pytest.fixture
    async def conformance_case(self, package_on_path: Path):
        async with case_for_package(f"{PACKAGE}.manifest") as case:
            yield case


# -- a generation through the pipeline -------------------------------------------------------------------
@pytest.mark.system
async def test_a_scaffolded_folder_runs_a_generation_through_the_pipeline(
    scaffolded: Path, fresh_servers, monkeypatch
):
    providers = scaffolded / "providers"
    fake = load_fake(providers / "my_lumen")(latency=0.3)
    monkeypatch.setenv("PIXSIM_MY_LUMEN_BASE_URL", fake.start("127.0.0.1", 0))
    settings = service_settings(fresh_servers, db="scaffold", providers_dir=providers)
    try:
        async with (
            serve(*build_apps(settings, TracerProvider(), providers_dir=providers)) as served,
            api_client(served[0].url) as api,
        ):
            assert [p["id"] for p in (await api.get("/api/v1/providers")).json()["items"]] == [FOLDER_ID]
            account = await api.post(
                "/api/v1/accounts",
                json={
                    "provider_id": FOLDER_ID,
                    "raw_data": fake.valid_raw_data(),
                    "credits": {FOLDER_ID: 10},
                },
            )
            assert account.status_code == 201, account.text
            job = await create(api, {"prompt": "a lighthouse at dusk", "duration": 2}, provider=FOLDER_ID)
            done = await wait_for(api, job["id"])
            assert done["status"] == "completed" and done["account_id"] == account.json()["id"], done
            assert done["result"]["video_url"].startswith(fake.url)
            entries = await wait_ledger(
                fresh_servers.mongo_url, "scaffold", job["id"], {"reserved", "charged"}
            )
            assert [(e["kind"], e["credit_type"], e["amount"]) for e in entries] == [
                ("reserved", FOLDER_ID, 2),
                ("charged", FOLDER_ID, 2),
            ]
        assert [r.json.get("reference") for r in fake.requests if r.method == "POST"] == [job["id"]]
    finally:
        fake.stop()
