"""What a chaos run checks once the load is in and the faults are over, from what is stored, never from logs.

- lost: a generation the system accepted (202 or PubAck) that the read model does not know at the end;
- stuck: one it knows that has not ended (completed, failed, filtered, cancelled) by the drain deadline;
- double_submitted: a generation with more than one job at the provider (counted at the fake, by the
  reference each job was submitted with), or an HTTP request whose retries made more than one generation;
- double_charged: a generation settled (charged or released) more than once for a credit type, in the ledger;
- balance_mismatch: accounts whose balances disagree with their ledger (`check_account`), or which still
  hold credits in reserve although every generation has ended;
- leaked_slots: account leases (concurrency slots) still taken although every generation has ended;
- legit_dlq: dead letters in `pixsim.dlq.*` other than the poison messages the run published on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import nats
from nats.js.errors import NotFoundError
from pixsim_billing.invariants import check_account
from pixsim_billing.ledger import BALANCES, LEDGER
from pixsim_contracts import TERMINAL_GENERATION_EVENTS as TERMINAL
from pixsim_contracts import subjects
from pixsim_gateway.projections import GENERATIONS
from pixsim_runtime.accounts import ACCOUNTS
from pixsim_runtime.bus_auth import DURABLES
from pymongo.asynchronous.database import AsyncDatabase

from .cluster import say
from .load import Request

#: Consumers whose work the figures depend on (the archiver and webhooks retry on schedules of their own).
WATCHED = [
    (stream, durable)
    for owned in DURABLES.values()
    for stream, durable in owned
    if durable not in ("gateway-archiver", "gateway-webhooks")
]


@dataclass
class Figures:
    lost: int = 0
    stuck: int = 0
    double_submitted: int = 0
    double_charged: int = 0
    balance_mismatch: int = 0
    leaked_slots: int = 0
    legit_dlq: int = 0

    def line(self) -> str:
        return " ".join(f"{name}={value}" for name, value in asdict(self).items())

    @property
    def ok(self) -> bool:
        return not any(asdict(self).values())


async def wait_ended(
    db: AsyncDatabase, nc: nats.NATS, ids: list[str], timeout: float
) -> dict[str, dict[str, Any]]:
    """The read model's documents of `ids` once all have ended, or at the deadline, or once every open one
    is one whose terminal event the gateway dead-lettered (its read model can never end it)."""
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 15
    while True:
        try:
            docs = {
                d["_id"]: d
                for d in await db[GENERATIONS]
                .find({"_id": {"$in": ids}}, {"status": 1, "error": 1})
                .to_list()
            }
        except Exception as exc:  # noqa: BLE001 - MongoDB may still be coming back: try again
            say(f"reading the read model failed ({type(exc).__name__}); again")
            docs = {}
        open_ = [gid for gid in ids if docs.get(gid, {}).get("status") not in TERMINAL]
        if (docs and not open_) or time.monotonic() > deadline:
            return docs
        if time.monotonic() > next_note:
            say(
                f"waiting for {len(open_)} generations to end: "
                + ", ".join(
                    f"{s}={n}"
                    for s, n in Counter(docs.get(g, {}).get("status", "missing") for g in open_).most_common()
                )
            )
            next_note = time.monotonic() + 15
            ends_lost = {
                d["generation_id"]
                for d in await dead_letters(nc)
                if d["service"] == "gateway" and d["subject"].rsplit(".", 1)[-1] in TERMINAL
            }
            if docs and set(open_) <= ends_lost:
                say(
                    f"the gateway dead-lettered the end of each of the {len(open_)} open generations: "
                    "they can never end in the read model"
                )
                return docs
        await asyncio.sleep(2)


async def wait_idle(nc: nats.NATS, timeout: float) -> list[str]:
    """Until the watched consumers have nothing pending or unacked; the ones still busy at the deadline."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while True:
        busy = []
        for stream, durable in WATCHED:
            try:
                info = await js.consumer_info(stream, durable)
            except NotFoundError:
                continue
            if info.num_pending or info.num_ack_pending:
                busy.append(f"{durable}: {info.num_pending} pending, {info.num_ack_pending} unacked")
        if not busy or time.monotonic() > deadline:
            return busy
        await asyncio.sleep(1)


async def dead_letters(nc: nats.NATS) -> list[dict[str, Any]]:
    """Every dead letter, with the `generation_id` of its body when it has one."""
    js = nc.jetstream()
    state = (await js.stream_info(subjects.DLQ_STREAM)).state
    letters = []
    for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        try:
            letter = json.loads((await js.get_msg(subjects.DLQ_STREAM, seq)).data)
        except NotFoundError:
            continue
        try:
            letter["generation_id"] = json.loads(letter.get("body") or "").get("generation_id")
        except (ValueError, AttributeError):
            letter["generation_id"] = None
        letters.append(letter)
    return letters


@dataclass
class Findings:
    """The figures, and what stands behind them (printed, and written to `--summary`)."""

    figures: Figures = field(default_factory=Figures)
    details: list[str] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)  # {generation_id, status}
    legit_dlq: list[dict[str, Any]] = field(default_factory=list)  # {service, subject, reason, generation_id}


async def store_figures(
    db: AsyncDatabase,
    nc: nats.NATS,
    requests: list[Request],
    docs: dict[str, dict],
    poison: list[str],
    found: Findings,
) -> None:
    """Every figure but double_submitted's provider side (the fake's jobs are read after it stops)."""
    ids = [gid for r in requests for gid in r.ids]
    f, details = found.figures, found.details
    missing = [gid for gid in ids if gid not in docs]
    stuck = [gid for gid in ids if gid in docs and docs[gid]["status"] not in TERMINAL]
    f.lost, f.stuck = len(missing), len(stuck)
    _note(details, "lost", missing)
    _note(details, "stuck", [f"{gid} ({docs[gid]['status']})" for gid in stuck])
    found.stuck = [{"generation_id": gid, "status": docs[gid]["status"]} for gid in stuck]
    forked = [r for r in requests if len(r.ids) > 1]
    f.double_submitted = len(forked)
    _note(details, "one HTTP request made several generations", [f"{r.key}: {sorted(r.ids)}" for r in forked])

    settlements: Counter[tuple[str, str]] = Counter()
    async for entry in db[LEDGER].find({"kind": {"$in": ["charged", "released"]}}):
        settlements[(entry["generation_id"], entry["credit_type"])] += 1
    twice = [f"{gid}/{ct} settled {n} times" for (gid, ct), n in settlements.items() if n > 1]
    f.double_charged = len(twice)
    _note(details, "double_charged", twice)

    account_ids = set(await db[BALANCES].distinct("account_id"))
    account_ids |= {a["_id"] async for a in db[ACCOUNTS].find({}, {"_id": 1})}  # nx-27017: no distinct("_id")
    for account_id in sorted(account_ids):
        problems = await check_account(db, account_id)
        async for balance in db[BALANCES].find({"account_id": account_id}):
            if int(balance.get("reserved") or 0):
                problems.append(
                    f"{balance['_id']}: {balance['reserved']} still reserved after every job ended"
                )
        if problems:
            f.balance_mismatch += 1
            _note(details, f"balance_mismatch {account_id}", problems)
    async for account in db[ACCOUNTS].find({}):
        leases = account.get("leases") or {}
        leaked = max(len(leases), int(account.get("slots_used") or 0))
        f.leaked_slots += leaked
        if leaked:
            _note(
                details,
                f"leaked_slots {account['_id']} (slots_used={account.get('slots_used')})",
                [
                    f"{gid} ({docs.get(gid, {}).get('status', 'unknown')}): {lease}"
                    for gid, lease in leases.items()
                ],
            )

    letters = await dead_letters(nc)
    legit = [d for d in letters if not any(p in d.get("subject", "") for p in poison)]
    f.legit_dlq = len(legit)
    details.append(
        f"poison messages dead-lettered as they should: {len(letters) - len(legit)} dead letters "
        f"for {len(poison)} poison requests"
    )
    _note(details, "legit_dlq", [f"{d.get('service')} {d.get('subject')}: {d.get('reason')}" for d in legit])
    found.legit_dlq = [
        {k: d.get(k) for k in ("service", "subject", "reason", "generation_id")} for d in legit
    ]


def provider_double_submits(dump: dict[str, Any] | None, ids: set[str], details: list[str]) -> int:
    """Generations with more than one job at the provider (over every account's token)."""
    if dump is None:
        details.append("the fake wrote no dump: provider-side double submits not counted")
        return 1
    jobs: dict[str, list[str]] = {}
    for job in dump["jobs"]:
        if job["reference"] in ids:
            jobs.setdefault(job["reference"], []).append(f"{job['id']} (token {job['token']})")
    doubled = {ref: found for ref, found in jobs.items() if len(found) > 1}
    _note(details, "double_submitted at the provider", [f"{ref}: {found}" for ref, found in doubled.items()])
    return len(doubled)


def _note(details: list[str], what: str, items: list[str], limit: int = 20) -> None:
    if items:
        details.append(f"{what}: {len(items)}")
        details.extend(f"    {item}" for item in items[:limit])
        if len(items) > limit:
            details.append(f"    ... and {len(items) - limit} more")
