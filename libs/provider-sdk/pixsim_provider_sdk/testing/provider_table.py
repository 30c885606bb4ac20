"""The README's provider table, rendered from a registry so that the docs cannot drift from discovery.

The README holds the table between `START` and `END` markers; `make docs` rewrites that block
(`with_table`), and a test compares it with `provider_table_markdown(discover(...))`.
"""

from __future__ import annotations

from ..registry import Registry

START = "<!-- providers:start -->"
END = "<!-- providers:end -->"


def provider_table_markdown(registry: Registry) -> str:
    """A Markdown table of the registry's providers, by id: id, kind, operations and credit types."""
    lines = ["| id | kind | operations | credit types |", "|---|---|---|---|"]
    for item in registry:
        manifest = item.manifest
        operations = ", ".join(op.value for op in item.provider.supported_operations)
        credit_types = ", ".join(manifest.credit_types)
        lines.append(f"| {manifest.id} | {manifest.kind.value} | {operations} | {credit_types} |")
    return "\n".join(lines) + "\n"


def marked_block(text: str) -> str | None:
    """What `text` holds between the markers (without the blank lines around it), or None without markers."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(START) : end].strip("\n") + "\n"


def pasteable_block(registry: Registry) -> str:
    """The whole block, markers included, as it belongs in the README."""
    return f"{START}\n{provider_table_markdown(registry)}{END}\n"


def with_table(text: str, registry: Registry) -> str:
    """`text` with the block between the markers replaced by the registry's table (unchanged without markers)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return text
    return text[:start] + pasteable_block(registry).rstrip("\n") + text[end + len(END) :]
