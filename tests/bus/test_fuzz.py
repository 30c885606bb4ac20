"""Fuzz: thousands of mutated and malformed events on every subject a service consumes, published as users
allowed to publish there (`upstream` for requests, the tests' `admin` for the rest). Afterwards every
service is ready, every message is in the dead-letter stream with a reason from every consumer that read
it, nothing stored changed (ledger, balances, accounts, read models), no generation appeared, and a
normal generation still completes.

Seeded and reproducible: PIXSIM_FUZZ_SEED (default 9) and PIXSIM_FUZZ_MESSAGES (default 5000). Every
message is checked against the consumers' own validation first, and mutated again until every consumer
that reads it must refuse it: the fuzz is about what invalid input does, valid input is the pipeline's job.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import time
from collections import Counter
from typing import Any, ClassVar

import httpx
import pytest
from bus.kit import Books, Bus, dead_letters, last_seq, own_servers, readers, running, wait_all_idle
from nats.js.errors import APIError
from pixsim_contracts import (
    AnyCreditEvent,
    AnyGenerationEvent,
    GenerationCancelled,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationFiltered,
    GenerationRequested,
    GenerationSubmitted,
    new_id,
    subjects,
)
from pixsim_runtime.consumers import check_event
from pydantic import TypeAdapter
from support import create, wait_for

pytestmark = pytest.mark.system

SEED = int(os.environ.get("PIXSIM_FUZZ_SEED", "9"))
MESSAGES = int(os.environ.get("PIXSIM_FUZZ_MESSAGES", "5000"))

#: What each consumer validates a subject's messages as (the services' own subscriptions).
_DISPATCHER = {
    "requested": GenerationRequested,
    "completed": GenerationCompleted,
    "failed": GenerationFailed,
    "filtered": GenerationFiltered,
    "cancelled": GenerationCancelled,
}
_POLLER = {"submitted": GenerationSubmitted, "cancel_requested": GenerationCancelRequested}


def adapters(subject: str) -> list[TypeAdapter[Any]]:
    family, kind = subject.split(".")[1], subject.rsplit(".", 1)[1]
    if family == "credits":
        return [AnyCreditEvent]
    found = [AnyGenerationEvent]
    for table in (_DISPATCHER, _POLLER):
        if kind in table:
            found.append(TypeAdapter(table[kind]))
    return found


def refused_by_all(subject: str, body: bytes) -> bool:
    return all(check_event(adapter, subject, body)[1] is not None for adapter in adapters(subject))


class Mutator:
    """Valid events of every consumed kind, then broken the ways an attacker (or a buggy publisher) would."""

    BAD_NUMBERS: ClassVar = ["10", "1e3", 10.0, 2.5, True, None, -1, -(10**12), 10**12, 2**64, "NaN", [], {}]
    BAD_IDS: ClassVar = ["", "a.b", "*", ">", "has space", "x" * 300, "é-ü", "a\u0000b", 42, None, ["g"]]

    def __init__(self, rng: random.Random, generation_id: str, account_id: str) -> None:
        self.rng = rng
        self.real_generation, self.real_account = generation_id, account_id

    def _gid(self) -> str:
        return self.real_generation if self.rng.random() < 0.3 else new_id()

    def _account(self) -> str:
        return self.real_account if self.rng.random() < 0.5 else f"acc_{new_id()}"

    def template(self) -> tuple[str, dict[str, Any]]:
        """A valid event body and its subject."""
        gid, acc = self._gid(), self._account()
        base = {"event_id": new_id(), "version": 1, "occurred_at": "2026-11-27T00:00:00+00:00"}
        credit = {**base, "generation_id": gid, "provider_id": "sim", "account_id": acc, "credit_type": "sim"}
        kinds = {
            "requested": {
                "generation_id": gid,
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "params": {"prompt": "fuzz", "duration": 1},
            },
            "submitted": {
                "generation_id": gid,
                "provider_id": "sim",
                "operation_type": "text_to_video",
                "account_id": acc,
                "provider_job_id": "job-1",
                "credits_reserved": {"sim": 1},
                "deadline_at": "2030-01-01T00:00:00+00:00",
            },
            "progressed": {"generation_id": gid, "progress": 0.5},
            "completed": {
                "generation_id": gid,
                "provider_id": "sim",
                "account_id": acc,
                "result": {"video_url": "https://example.com/v.mp4"},
                "credits_charged": {"sim": 1},
            },
            "failed": {"generation_id": gid, "provider_id": "sim", "error": {"code": "x", "message": "y"}},
            "filtered": {
                "generation_id": gid,
                "provider_id": "sim",
                "error": {"code": "content_x", "message": "y"},
            },
            "cancel_requested": {"generation_id": gid},
            "cancelled": {"generation_id": gid, "provider_id": "sim"},
        }
        credit_kinds = {
            "reserved": {"amount": 1},
            "charged": {"amount": 1, "reserved": 1},
            "released": {"amount": 1, "reason": "r"},
            "granted": {"amount": 1, "generation_id": None},
            "synced": {"provider_balance": 1, "generation_id": None},
        }
        if self.rng.random() < 0.6:
            kind = self.rng.choice(list(kinds))
            return subjects.generation(gid, kind), {**base, "type": f"generation.{kind}", **kinds[kind]}
        kind = self.rng.choice(list(credit_kinds))
        return subjects.credits("sim", kind), {**credit, "type": f"credits.{kind}", **credit_kinds[kind]}

    # -- mutations of a body (a dict), of the subject, and of the bytes ----------------------------
    def _field(self, body: dict[str, Any], prefer: tuple[str, ...] = ()) -> str:
        keys = [k for k in body if k in prefer] or list(body)
        return self.rng.choice(keys)

    def mutate(self, subject: str, body: dict[str, Any]) -> tuple[str, bytes, str]:
        """(subject, bytes, what was done)."""
        rng, body = self.rng, copy.deepcopy(body)
        done = []
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(
                [
                    "number",
                    "number",
                    "number",
                    "drop",
                    "extra",
                    "type",
                    "id",
                    "id",
                    "subject",
                    "subject",
                    "text",
                    "object",
                    "version",
                    "time",
                    "bytes",
                ]
            )
            done.append(op)
            if op == "number":
                numeric = ("amount", "reserved", "provider_balance", "progress", "version", "priority")
                key = self._field(body, numeric)
                body[key] = rng.choice(self.BAD_NUMBERS)
            elif op == "drop" and body:
                body.pop(self._field(body))
            elif op == "extra":
                body[rng.choice(["admin", "amount2", "__proto__", "balance"])] = rng.choice(
                    [1, "x", None, {}]
                )
            elif op == "type":
                body["type"] = rng.choice(
                    [
                        "generation.hacked",
                        "credits.minted",
                        "account.created",
                        "",
                        None,
                        7,
                        "credits.charged",
                        "generation.completed",
                        "GENERATION.REQUESTED",
                    ]
                )
            elif op == "id":
                key = self._field(
                    body, ("generation_id", "account_id", "provider_id", "credit_type", "event_id")
                )
                body[key] = rng.choice(self.BAD_IDS)
            elif op == "subject":
                parts = subject.split(".")
                if rng.random() < 0.5:
                    parts[2] = rng.choice([new_id(), "premium", "gold", self.real_generation, "other"])
                else:
                    parts[3] = rng.choice(
                        [
                            "requested",
                            "completed",
                            "charged",
                            "reserved",
                            "granted",
                            "synced",
                            "submitted",
                            "progressed",
                            "hacked",
                        ]
                    )
                subject = ".".join(parts)
                if parts[1] == "credits" and parts[3] in (
                    "requested",
                    "completed",
                    "submitted",
                    "progressed",
                ):
                    subject = subjects.credits(parts[2], "charged")
            elif op == "text":
                key = self._field(body, ("reason", "provider_job_id", "user_id", "error"))
                body[key] = rng.choice(["x" * rng.choice([3000, 70_000]), {"code": 1}, ["a"], "z\u0000"])
            elif op == "object":
                deep: Any = "leaf"
                for _ in range(rng.choice([20, 200])):
                    deep = {"d": deep}
                key = rng.choice(["params", "result", "credits_reserved", "changes"])
                body[key] = rng.choice([deep, {"pad": "p" * 70_000}, [1, 2], "params", {"sim": "10"}])
            elif op == "version":
                body["version"] = rng.choice([0, "1", 1.0, 10**6])
            elif op == "time":
                body["occurred_at"] = rng.choice(["yesterday", 0, "2026-13-45T00:00:00Z", None])
        data = json.dumps(body, default=str).encode()
        if "bytes" in done:  # the body is not an event object at all
            data = rng.choice(
                [
                    b"[1, 2, 3]",
                    b"[" + data + b"]",
                    b'"a string"',
                    b"42",
                    b"null",
                    b"",
                    data[: len(data) // 2],
                    b"\xff\xfe" + data,
                    b"\xef\xbb\xbf" + data,
                    b"{" * 5000 + b"}" * 5000,
                    b"not json at all",
                    data.replace(b'"', b"'"),
                    json.dumps({**body, "pad": "z" * 190_000}, default=str).encode(),
                    json.dumps({**body, "pad": "z" * 300_000}, default=str).encode(),
                ]
            )  # over the limit
        return subject, data, "+".join(done)

    def message(self) -> tuple[str, bytes, str]:
        """A message every consumer that reads it must refuse."""
        subject, body = self.template()
        for _ in range(20):
            mutated = self.mutate(subject, body)
            if refused_by_all(mutated[0], mutated[1]):
                return mutated
        return subject + "x", json.dumps(body).encode(), "force"  # pragma: no cover - never seen


@pytest.fixture(scope="module")
async def bus(sim_fake) -> Bus:
    async with own_servers() as servers, running(servers, db="fuzz") as bus:
        yield bus


async def test_fuzzed_events_change_nothing_and_all_land_in_the_dead_letter_stream(bus: Bus) -> None:
    # Something real to attack: an account with credits and a generation that ran on it.
    resp = await bus.api.post(
        "/api/v1/accounts",
        json={"provider_id": "sim", "raw_data": {"token": "tok-fuzz"}, "credits": {"sim": 100}},
    )
    assert resp.status_code == 201, resp.text
    account = resp.json()["id"]
    real = await create(bus.api, {"prompt": "the real one", "duration": 2}, account_id=account)
    assert (await wait_for(bus.api, real["id"]))["status"] == "completed"
    await wait_all_idle(bus.servers)
    await asyncio.sleep(0.5)  # the last account notices
    await wait_all_idle(bus.servers)
    books = await Books.settled(bus.db)
    generations = await bus.db["generations"].count_documents({})
    dlq_before = await last_seq(bus.admin, subjects.DLQ_STREAM)

    rng = random.Random(SEED)
    mutator = Mutator(rng, real["id"], account)
    messages = [mutator.message() for _ in range(MESSAGES)]
    upstream = await bus.connect("upstream")
    published: dict[tuple[str, int], str] = {}
    refused_at_the_door = Counter()
    sem = asyncio.Semaphore(64)
    started = time.monotonic()

    async def publish(subject: str, data: bytes) -> None:
        client = (
            upstream
            if subject.endswith(".requested") and subject.startswith("pixsim.generations.")
            else bus.admin
        )
        async with sem:
            try:
                ack = await client.jetstream().publish(
                    subject, data, timeout=30, headers={"Nats-Msg-Id": new_id()}
                )
            except APIError as exc:
                refused_at_the_door[exc.description or str(exc)] += 1
                return
            published[(ack.stream, ack.seq)] = subject

    try:
        await asyncio.gather(*(publish(subject, data) for subject, data, _ in messages))
    finally:
        await upstream.close()
    published_s = time.monotonic() - started
    await wait_all_idle(bus.servers, timeout=120)
    settled_s = time.monotonic() - started

    letters = [d for d in await dead_letters(bus.admin, dlq_before)]
    by_message: dict[tuple[str, int], dict[str, dict]] = {}
    for letter in letters:
        by_message.setdefault((letter["stream"], letter["stream_seq"]), {})[letter["service"]] = letter
    missing = {
        key: (subject, sorted(readers(subject) - set(by_message.get(key, {}))))
        for key, subject in published.items()
        if readers(subject) - set(by_message.get(key, {}))
    }
    unexpected = [key for key in by_message if key not in published]
    without_reason = [d for d in letters if not d.get("reason")]
    changes = books.changes(await Books.settled(bus.db))
    new_generations = await bus.db["generations"].count_documents({}) - generations
    ready = {}
    async with httpx.AsyncClient() as client:
        for name, url in bus.service_urls.items():
            ready[name] = (await client.get(f"{url}/readyz")).status_code
    reasons = Counter(d["reason"].split(":", 1)[0][:40] for d in letters)

    print(
        f"\nfuzz (seed {SEED}): {len(messages)} messages generated "
        f"({Counter(op for _, _, ops in messages for op in ops.split('+')).most_common()}), "
        f"{len(published)} stored, {sum(refused_at_the_door.values())} refused by the stream "
        f"({dict(refused_at_the_door)})"
    )
    print(
        f"fuzz: {len(letters)} dead letters for {len(by_message)} messages "
        f"(expected {sum(len(readers(s)) for s in published.values())}), reasons {reasons.most_common()}"
    )
    print(
        f"fuzz: changes to the books and read models: {changes or 0}; new generations: {new_generations}; "
        f"readiness {ready}; published in {published_s:.1f}s, settled in {settled_s:.1f}s"
    )

    assert not missing, f"{len(missing)} messages lack dead letters, e.g. {list(missing.items())[:5]}"
    assert not unexpected and not without_reason
    assert len(letters) == sum(len(readers(s)) for s in published.values())
    assert changes == {} and new_generations == 0
    assert set(ready.values()) == {200}
    after = await create(bus.api, {"prompt": "after the fuzz", "duration": 1}, account_id=account)
    assert (await wait_for(bus.api, after["id"]))["status"] == "completed"
