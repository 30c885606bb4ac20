"""The README's provider table lists exactly the built-in providers that discovery finds (`make docs`
writes it). A provider folder the author just dropped in and has not committed yet does not fail the
suite: the test names it and says to run `make docs`."""

from __future__ import annotations

import difflib
import subprocess
import warnings
from pathlib import Path

import pytest
from pixsim_provider_sdk import Registry, discover
from pixsim_provider_sdk.testing.provider_table import (
    END,
    START,
    marked_block,
    pasteable_block,
    provider_table_markdown,
    with_table,
)

REPO = Path(__file__).resolve().parents[2]


def _committed(registry: Registry) -> Registry:
    """The providers whose folders git tracks (all of them outside a git checkout)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "providers"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return registry
    tracked = {Path(path).parts[1] for path in listed if len(Path(path).parts) > 2}
    new = [item.manifest.id for item in registry if Path(item.origin).name not in tracked]
    if new:
        warnings.warn(
            f"provider folders not committed yet, left out of the README check: {new}; "
            "run `make docs` to add them to the README's table",
            stacklevel=2,
        )
    return Registry([item for item in registry if Path(item.origin).name in tracked])


def test_readme_provider_table_matches_discovery():
    # Built-in folders only: installed third-party packages (the example among them) are not part of PixSim.
    registry = _committed(discover(REPO / "providers", include_entry_points=False))
    expected = provider_table_markdown(registry)
    readme = REPO / "README.md"
    found = marked_block(readme.read_text()) if readme.exists() else None
    if found is None:
        pytest.fail(f"{readme} has no {START} ... {END} block. Paste this:\n\n{pasteable_block(registry)}")
    if found != expected:
        diff = "".join(
            difflib.unified_diff(
                found.splitlines(True), expected.splitlines(True), "README.md (now)", "discovery (expected)"
            )
        )
        pytest.fail(f"the README's provider table differs from discovery (run `make docs`):\n{diff}")


def test_the_table_has_one_row_per_provider_with_its_manifest_values():
    registry = discover(REPO / "providers", include_entry_points=False)
    rows = provider_table_markdown(registry).splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == registry.ids()
    sim = next(row for row in rows if row.startswith("| sim |"))
    assert sim == "| sim | both | text_to_video, image_to_video, text_to_image | sim |"


def test_marked_block_reads_between_the_markers():
    assert marked_block(f"intro\n{START}\n| a |\n{END}\nrest") == "| a |\n"
    assert marked_block("no markers here") is None
    assert marked_block(f"{END} before {START}") is None


def test_make_docs_writes_the_table_between_the_markers():
    registry = discover(REPO / "providers", include_entry_points=False, only=["sim"])
    text = f"intro\n{START}\n| stale |\n{END}\nrest"
    assert with_table(text, registry) == f"intro\n{pasteable_block(registry).rstrip()}\nrest"
    assert with_table("no markers", registry) == "no markers"
