"""Generate PixSim's event contracts from the code: `docs/asyncapi.yaml` and `docs/schemas/<type>.json`.

    python docs/generate.py           # write the files (`make docs`)
    python docs/generate.py --check   # exit 1 if the checked-in files are not what the code says

Where each part comes from:
- event channels, messages and payload schemas: `pixsim_contracts` (subjects, event models, docstrings);
- receive operations: each service app's FastStream broker, rendered by FastStream's AsyncAPI generator
  (one channel per durable subscriber), with the payload replaced by the events its filter matches,
  because the subscribers take raw messages and validate them themselves;
- send operations: a static scan of each service for the events it passes to `publish_event`
  (`docs/publishers.py`), plus the upstream contract for `generation.requested`;
- the dead-letter record: `pixsim_runtime.consumers` (its keys are checked against that source).
Building an app connects to nothing, so this runs anywhere, with no server.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pixsim_runtime.streams import DUPLICATE_WINDOW_S

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
SERVICES = ("gateway", "dispatcher", "poller", "billing")
AGGREGATE_FIELDS = ("generation_id", "credit_type", "account_id")
HEADERS = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "JetStream de-duplication key: the event id, or for an "
            "upstream `generation.requested` the generation id. A repeat inside the stream's "
            f"duplicate window ({DUPLICATE_WINDOW_S // 60} minutes) is dropped.",
        },
        "traceparent": {
            "type": "string",
            "description": "W3C trace context; the consumer's span joins this trace.",
        },
        "content-type": {"type": "string", "const": "application/json"},
    },
}
DEAD_LETTER_FIELDS = {
    "reason": ("string", "Why the message was dead-lettered (validation error, or the last exception)"),
    "service": ("string", "The service whose consumer gave up"),
    "subject": ("string", "The original subject"),
    "stream": ("string", "The original stream"),
    "stream_seq": ("integer", "The original message's stream sequence (replay it from there)"),
    "deliveries": ("integer", "How many times it was delivered"),
    "dead_lettered_at": ("string", "When (ISO 8601, UTC)"),
    "headers": ("object", "The original headers, without Authorization (at most 32, each cut to 512 bytes)"),
    "body": ("string", "The original body as text: all of it up to 4 KiB, else its first 4 KiB"),
    "body_bytes": ("integer", "The original body's size in bytes"),
    "body_sha256": ("string", "SHA-256 of the original body (hex), to find it in the stream"),
    "body_truncated": ("boolean", "True when `body` is only the start of the original"),
}


def _load_sibling(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"pixsim_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _title(event: type) -> str:
    return (event.__doc__ or event.__name__).strip().splitlines()[0]


def _subject_template(event: type) -> str:
    """`pixsim.generations.{generation_id}.requested`, from the event's own `subject` property."""
    placeholders = {f: "{" + f + "}" for f in AGGREGATE_FIELDS if f in event.model_fields}  # type: ignore[attr-defined]
    kind = event.model_fields["type"].default  # type: ignore[attr-defined]
    return event.model_construct(type=kind, **placeholders).subject  # type: ignore[attr-defined]


def _matches(filter_subject: str, subject: str) -> bool:
    """NATS subject matching; `{param}` tokens of a template match `*` only."""
    want, have = filter_subject.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _dead_letter_schema() -> dict[str, Any]:
    from pixsim_runtime import consumers

    tree = ast.parse(Path(consumers.__file__).read_text())
    record = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "record" for t in node.targets)
    )
    keys = [k.value for k in record.keys]  # type: ignore[attr-defined]
    if sorted(keys) != sorted(DEAD_LETTER_FIELDS):  # the code changed: describe the new record here
        raise SystemExit(f"dead-letter record keys changed: {keys}; update DEAD_LETTER_FIELDS in {__file__}")
    return {
        "type": "object",
        "title": "DeadLetter",
        "required": keys,
        "description": "What a consumer writes to `pixsim.dlq.<service>` for a message it cannot handle.",
        "properties": {k: {"type": t, "description": d} for k, (t, d) in DEAD_LETTER_FIELDS.items()},
    }


def _build_apps() -> dict[str, Any]:
    """Each service's app, built with fixed settings so the document never depends on this shell's env."""
    from cryptography.fernet import Fernet
    from opentelemetry.sdk.trace import TracerProvider
    from pixsim_provider_sdk import Registry

    os.environ.setdefault("PIXSIM_CREDENTIALS_KEY", Fernet.generate_key().decode())  # never used: no I/O
    apps = {}
    for service in SERVICES:
        module = importlib.import_module(f"pixsim_{service}.app")
        apps[service] = module.create_app(tracer_provider=TracerProvider(), registry=Registry())
    return apps


def _faststream_receivers(service: str, app: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """FastStream's own AsyncAPI rendering of this service's subscribers: (channels, operations)."""
    from faststream.specification import AsyncAPI

    broker = app.state.ctx.broker
    rendered = json.loads(
        AsyncAPI(broker, title=service, version="0", schema_version="3.0.0").to_specification().to_json()
    )
    streams = {
        (sub.extra_options or {}).get("durable"): (sub.extra_options or {}).get("stream")
        for sub in broker.subscribers
    }
    channels = {}
    for name, channel in sorted(rendered.get("channels", {}).items()):  # FastStream's order varies
        durable = name.split(":", 1)[1]
        channels[name] = {
            "address": channel["address"],
            "title": name,
            "description": f"The `{durable}` durable pull consumer of {service} (shared by all its "
            f"replicas) on stream `{streams.get(durable)}`.",
            "bindings": channel.get("bindings", {}),
            "x-pixsim-service": service,
            "x-pixsim-durable": durable,
            "x-pixsim-stream": streams.get(durable),
        }
    return channels, rendered.get("operations", {})


def build_document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document, as plain data."""
    from pixsim_contracts import ALL_EVENT_TYPES, subjects
    from pydantic.json_schema import models_json_schema

    publishers = _load_sibling("publishers")
    by_name = {e.__name__: e for e in ALL_EVENT_TYPES}
    _, defs = models_json_schema(
        [(e, "validation") for e in ALL_EVENT_TYPES], ref_template="#/components/schemas/{model}"
    )
    schemas = {**defs["$defs"], "NatsHeaders": HEADERS, "DeadLetter": _dead_letter_schema()}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    event_channel: dict[str, str] = {}
    for event in ALL_EVENT_TYPES:
        kind, address = event.model_fields["type"].default, _subject_template(event)
        messages[event.__name__] = {
            "name": event.__name__,
            "title": kind,
            "summary": _title(event),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/NatsHeaders"},
            "payload": {"$ref": f"#/components/schemas/{event.__name__}"},
        }
        params = [f for f in AGGREGATE_FIELDS if "{" + f + "}" in address]
        channels[kind] = {
            "address": address,
            "title": kind,
            "description": inspect.cleandoc(event.__doc__ or ""),
            "parameters": {p: {"description": f"The event's `{p}`"} for p in params},
            "messages": {event.__name__: {"$ref": f"#/components/messages/{event.__name__}"}},
            "x-pixsim-stream": subjects.stream_of(address),
        }
        event_channel[event.__name__] = kind
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "dead letter",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/DeadLetter"},
    }
    channels["dead-letters"] = {
        "address": subjects.dlq("{service}"),
        "title": "dead letters",
        "description": "Messages a service could not handle: invalid bodies at once, failing ones after bounded retries.",
        "parameters": {"service": {"description": "The consuming service", "enum": list(SERVICES)}},
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        "x-pixsim-stream": subjects.DLQ_STREAM,
    }

    def send(op_id: str, channel: str, message: str, description: str) -> None:
        operations[op_id] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
            "description": description,
        }

    send("upstream:publish-generation-requested", "generation.requested", "GenerationRequested", "")
    for service, app in _build_apps().items():
        package = Path(importlib.import_module(f"pixsim_{service}").__file__).parent  # type: ignore[arg-type]
        for name in sorted(publishers.published_events(package, set(by_name)), key=list(by_name).index):
            send(
                f"{service}:publish-{event_channel[name]}",
                event_channel[name],
                name,
                f"{service} publishes this with a `Nats-Msg-Id` header, so a retried publish is dropped.",
            )
        sub_channels, sub_operations = _faststream_receivers(service, app)
        for name, channel in sub_channels.items():
            matched = [e for e in ALL_EVENT_TYPES if _matches(channel["address"], _subject_template(e))]
            channel["messages"] = {
                e.__name__: {"$ref": f"#/components/messages/{e.__name__}"} for e in matched
            }
            channels[name] = channel
            operations[name] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{name}"},
                "messages": [{"$ref": f"#/channels/{name}/messages/{e.__name__}"} for e in matched],
                "description": sub_operations.get(name, {}).get("description")
                or f"{service} handles these; an invalid body or a message that keeps failing is copied to "
                f"`pixsim.dlq.{service}` with the reason and acknowledged.",
            }
        if sub_channels:
            send(
                f"{service}:dead-letter",
                "dead-letters",
                "DeadLetter",
                f"{service} dead-letters to `pixsim.dlq.{service}`.",
            )
    readers = sorted(
        {
            ch["x-pixsim-service"]
            for ch in channels.values()
            if "x-pixsim-durable" in ch
            and _matches(ch["address"], _subject_template(by_name["GenerationRequested"]))
        }
    )
    operations["upstream:publish-generation-requested"]["description"] = (
        "An upstream system asks for a generation: it chooses `generation_id`, publishes to "
        "`pixsim.generations.<generation_id>.requested` with `Nats-Msg-Id: <generation_id>` (a duplicate "
        f"within the stream's {DUPLICATE_WINDOW_S // 60}-minute duplicate window is dropped) and waits for the JetStream ack. A body "
        "that fails validation is dead-lettered with the validation error by each consumer that reads it: "
        + ", ".join(f"`pixsim.dlq.{r}`" for r in readers)
        + "."
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "PixSim events",
            "version": importlib.metadata.version("pixsim-contracts"),
            "description": "Every event on PixSim's NATS JetStream, generated from the code by "
            "`make docs` (docs/generate.py). JSON bodies; one JSON Schema per event type "
            "in docs/schemas/. Trace context travels in the `traceparent` header.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "cluster": {
                "host": "nats:4222",
                "protocol": "nats",
                "description": "NATS JetStream as deploy/k8s runs it (`make run`: 127.0.0.1:4222)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> dict[str, str]:
    """Every generated file, relative to docs/, with its exact text."""
    import pixsim_contracts

    files = {
        "asyncapi.yaml": yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True, width=110)
    }
    for kind, schema in sorted(pixsim_contracts.json_schemas().items()):
        files[f"schemas/{kind}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def stale(files: dict[str, str], docs: Path = DOCS) -> list[str]:
    """The generated files that differ from, are missing from, or are left over in `docs`."""
    on_disk = {str(p.relative_to(docs)) for p in (docs / "schemas").glob("*.json")}
    wrong = [
        name
        for name, text in files.items()
        if not (docs / name).exists() or (docs / name).read_text() != text
    ]
    return sorted(wrong + [name for name in on_disk if name not in files])


def readme_with_provider_table(readme: Path = ROOT / "README.md") -> str:
    """The README with its provider table as discovery finds the folders in `providers/` today."""
    from pixsim_provider_sdk import discover
    from pixsim_provider_sdk.testing.provider_table import with_table

    return with_table(readme.read_text(), discover(ROOT / "providers", include_entry_points=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate docs/asyncapi.yaml, docs/schemas/*.json and the README's provider table."
    )
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)
    files = render()
    readme = readme_with_provider_table()
    if args.check:
        bad = [f"docs/{name}" for name in stale(files)]
        bad += ["README.md (provider table)"] if readme != (ROOT / "README.md").read_text() else []
        for name in bad:
            print(f"stale: {name} (run `make docs`)", file=sys.stderr)
        return 1 if bad else 0
    if readme != (ROOT / "README.md").read_text():
        (ROOT / "README.md").write_text(readme)
        print("wrote the provider table in README.md")
    for leftover in stale(files):
        if leftover not in files:
            (DOCS / leftover).unlink()
    for name, text in files.items():
        (DOCS / name).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / name).write_text(text)
        print(f"wrote docs/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
