"""The invariants of an account's money, checked from what is stored (tests and `make chaos` call this).

For every balance (account, credit type) of the account:
- its entries are numbered `1..entries` (the balance's version), exactly one entry per number, each
  `applied`; no entry of the balance is unnumbered or numbered beyond (at rest every event is booked,
  and every booking has its entry: those of the last fold too, which the balance carries as `pending`);
- no event is folded twice: `pending` holds the entries numbered up to `entries`, and no event it
  names has an entry under another number;
- `balance`, `reserved` and `spent` equal the sums of those entries' deltas;
- `reserved` equals the open holds: the reservations whose generation has no charge or release yet, and
  each generation has at most one reservation and one settlement per credit type (never charged twice);
- the account's `available` has folded the same entries (`billed.<credit type>` equals `entries`) and
  equals `balance - reserved - ` the holds the dispatcher took that billing has not booked as reservations.
The check reads several documents one after the other, so it is exact only at rest (no credit event
in flight); `check_account` is what to call after a run has drained.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pixsim_runtime.accounts import ACCOUNTS
from pymongo.asynchronous.database import AsyncDatabase

from .ledger import BALANCES, LEDGER, pending_entries

SETTLEMENTS = ("charged", "released")


async def check_account(db: AsyncDatabase, account_id: str) -> list[str]:
    """Every way the account's balances disagree with its ledger; an empty list when all invariants hold."""
    problems: list[str] = []
    balances = await db[BALANCES].find({"account_id": account_id}).to_list()
    entries = {e["_id"]: e for e in await db[LEDGER].find({"account_id": account_id}).to_list()}
    account = await db[ACCOUNTS].find_one({"_id": account_id})
    booked_reservations: set[tuple[str, str]] = set()
    for balance in balances:
        key, credit_type = balance["_id"], balance["credit_type"]
        count = int(balance.get("entries", 0))
        by_seq: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        for eid, e in sorted(entries.items()):
            if e.get("balance_id") != key:
                continue
            seq = e.get("seq")
            if isinstance(seq, int) and 1 <= seq <= count:
                by_seq[seq].append(e)
            else:
                problems.append(f"{key}: entry {eid} not booked (number {seq!r} of {count})")
        pending = {e["seq"]: e for e in pending_entries(balance)}
        folded: list[dict[str, Any]] = []
        for seq in range(1, count + 1):
            held = by_seq.get(seq, [])
            if len(held) > 1:
                problems.append(f"{key}: number {seq} held by {len(held)} entries ({held[0]['_id']}, ...)")
            if held:
                folded.append(held[0])
            elif seq in pending:
                problems.append(f"{key}: entry {seq} ({pending[seq]['_id']}) folded but never written")
                folded.append(pending[seq])
            else:
                problems.append(f"{key}: entry {seq} missing")
        if pending and max(pending) != count:
            problems.append(f"{key}: pending entries end at number {max(pending)}, not {count}")
        for seq, entry in pending.items():
            first = entries.get(entry["_id"])
            if first is not None and first.get("seq") != seq:
                problems.append(f"{key}: {entry['_id']} folded twice (numbers {first.get('seq')} and {seq})")
        problems += [
            f"{key}: entry {e.get('_id', e.get('event_id'))} folded but not marked applied"
            for e in folded
            if not e.get("applied")
        ]
        for field in ("balance", "reserved", "spent"):
            total = sum(int(e.get(f"delta_{field}") or 0) for e in folded)
            if total != int(balance.get(field, 0)):
                problems.append(f"{key}: {field} {balance.get(field, 0)} != sum of the ledger {total}")
        problems += _holds(key, balance, folded)
        booked_reservations |= {(e["generation_id"], credit_type) for e in folded if e["kind"] == "reserved"}
        if account is not None:
            billed = int((account.get("billed") or {}).get(credit_type, 0))
            if billed != count:
                problems.append(f"{key}: the account's available folded {billed} of {count} entries")
    if account is not None:
        problems += _available(account, balances, booked_reservations)
    return problems


def _holds(key: str, balance: dict[str, Any], folded: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    reserved: dict[str, int] = {}
    settled: Counter[str] = Counter()
    reservations: Counter[str] = Counter()
    for e in folded:
        gid = e.get("generation_id")
        if e["kind"] == "reserved":
            reservations[gid] += 1
            reserved[gid] = int(e["amount"])
        elif e["kind"] in SETTLEMENTS:
            settled[gid] += 1
            if gid in reserved and -int(e.get("delta_reserved") or 0) != reserved[gid]:
                problems.append(
                    f"{key}: {gid} settled {-int(e.get('delta_reserved') or 0)} of a {reserved[gid]} hold"
                )
    problems += [f"{key}: {gid} reserved {n} times" for gid, n in reservations.items() if n > 1]
    problems += [f"{key}: {gid} settled {n} times (charged twice)" for gid, n in settled.items() if n > 1]
    open_holds = sum(amount for gid, amount in reserved.items() if not settled[gid])
    if open_holds != int(balance.get("reserved", 0)):
        problems.append(f"{key}: reserved {balance.get('reserved', 0)} != open holds {open_holds}")
    return problems


def _available(
    account: dict[str, Any], balances: list[dict[str, Any]], booked_reservations: set[tuple[str, str]]
) -> list[str]:
    """`available` = balance - reserved - holds the dispatcher took that billing has not booked yet."""
    problems: list[str] = []
    unbooked: Counter[str] = Counter()
    for gid, lease in (account.get("leases") or {}).items():
        for credit_type, amount in (lease.get("credits") or {}).items():
            if not (lease.get("settled") and (gid, credit_type) in booked_reservations):
                unbooked[credit_type] += int(amount)
    available = account.get("available") or {}
    by_type = {b["credit_type"]: b for b in balances}
    for credit_type in sorted(set(by_type) | set(available)):
        b = by_type.get(credit_type, {})
        expected = int(b.get("balance", 0)) - int(b.get("reserved", 0)) - unbooked[credit_type]
        if int(available.get(credit_type, 0)) != expected:
            problems.append(
                f"{account['_id']}:{credit_type}: available {available.get(credit_type, 0)} != "
                f"balance - reserved - unbooked holds = {expected}"
            )
    return problems
