"""docs/asyncapi.yaml and docs/schemas/*.json are what the code says today, and hang together."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pixsim_contracts
import pytest
import yaml
from pixsim_contracts import ALL_EVENT_TYPES, GenerationRequested, subjects

ROOT = Path(__file__).resolve().parents[2]
#: The consumers the services are built around; the code may add more (all must be documented).
CORE_DURABLES = {
    "dispatcher",
    "poller",
    "poller-cancels",
    "billing",
    "gateway-generations",
    "gateway-credits",
}


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"pixsim_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def generate() -> Any:
    return _load(ROOT / "docs" / "generate.py")


@pytest.fixture(scope="module")
def files(generate: Any) -> dict[str, str]:
    return generate.render()


@pytest.fixture(scope="module")
def doc(files: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(files["asyncapi.yaml"])


def test_checked_in_contracts_are_current(generate: Any, files: dict[str, str]) -> None:
    assert generate.stale(files) == [], "run `make docs` and commit docs/"


def test_stale_files_are_reported(generate: Any, files: dict[str, str], tmp_path: Path) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert generate.stale(files, tmp_path) == []
    (tmp_path / "schemas" / "generation.requested.json").write_text("{}")
    (tmp_path / "schemas" / "generation.retired.json").write_text("{}")
    (tmp_path / "asyncapi.yaml").unlink()
    assert generate.stale(files, tmp_path) == [
        "asyncapi.yaml",
        "schemas/generation.requested.json",
        "schemas/generation.retired.json",
    ]


def test_every_event_has_a_schema_file_and_a_channel(files: dict[str, str], doc: dict[str, Any]) -> None:
    kinds = {t.model_fields["type"].default for t in ALL_EVENT_TYPES}
    assert {n for n in files if n.startswith("schemas/")} == {f"schemas/{k}.json" for k in kinds}
    assert kinds <= set(doc["channels"])
    for kind in kinds:
        assert json.loads(files[f"schemas/{kind}.json"]) == pixsim_contracts.json_schemas()[kind]


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    refs = list(walk(doc))
    assert refs
    for ref in refs:
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]


def test_operations_only_use_their_channels_messages(doc: dict[str, Any]) -> None:
    # An AsyncAPI 3 rule: an operation's messages must be ones its channel declares.
    for name, operation in doc["operations"].items():
        channel = operation["channel"]["$ref"]
        assert operation["messages"], name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), (name, message)


def test_every_durable_consumer_is_a_receive_operation(doc: dict[str, Any]) -> None:
    plan = _load(ROOT / "deploy" / "image" / "jetstream_setup.py").consumer_plan()
    receivers = {
        op_id.split(":", 1)[1]: op for op_id, op in doc["operations"].items() if op["action"] == "receive"
    }
    assert set(receivers) == {c.name for c in plan} >= CORE_DURABLES
    dispatcher = doc["channels"]["dispatcher:dispatcher"]
    assert dispatcher["address"] == subjects.generation_events("requested")
    assert list(dispatcher["messages"]) == ["GenerationRequested"]
    assert len(doc["channels"]["gateway:gateway-generations"]["messages"]) == 8


def test_the_upstream_publish_contract_is_documented(doc: dict[str, Any]) -> None:
    channel = doc["channels"]["generation.requested"]
    assert channel["address"] == "pixsim.generations.{generation_id}.requested"
    assert "upstream:publish-generation-requested" in doc["operations"]
    headers = doc["components"]["schemas"]["NatsHeaders"]["properties"]
    assert {"Nats-Msg-Id", "traceparent"} <= set(headers)
    assert doc["channels"]["dead-letters"]["address"] == subjects.dlq("{service}")
    publishers = {
        op_id.split(":")[0]
        for op_id, op in doc["operations"].items()
        if op["channel"]["$ref"] == "#/channels/generation.submitted" and op["action"] == "send"
    }
    assert publishers == {"dispatcher"}


def test_the_readme_example_message_is_valid(files: dict[str, str]) -> None:
    # The body the README's nats-py example publishes.
    body = _load(ROOT / "docs" / "examples" / "publish_generation_requested.py").generation_requested(
        "order-4711"
    )
    jsonschema.validate(body, json.loads(files["schemas/generation.requested.json"]))
    GenerationRequested.model_validate(body)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**body, "generation_id": "has.dots"}, json.loads(files["schemas/generation.requested.json"])
        )
