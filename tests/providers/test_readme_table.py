"""The README's provider table lists exactly the built-in providers that discovery finds."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from pixsim_provider_sdk import discover
from pixsim_provider_sdk.testing.provider_table import (
    END,
    START,
    marked_block,
    pasteable_block,
    provider_table_markdown,
)

REPO = Path(__file__).resolve().parents[2]


def test_readme_provider_table_matches_discovery():
    # Built-in folders only: installed third-party packages (the example among them) are not part of PixSim.
    registry = discover(REPO / "providers", include_entry_points=False)
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
        pytest.fail(
            f"the README's provider table differs from discovery:\n{diff}\n"
            f"Replace the block with:\n\n{pasteable_block(registry)}"
        )


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
