"""Oversized, out-of-range and malformed input answers 4xx with a message that names the problem, and
leaves no trace: no generation, no account, no event, no ledger entry."""

from __future__ import annotations

from typing import Any

import nats
import pytest
from accounts.kit import PROVIDER
from pixsim_contracts import subjects

pytestmark = pytest.mark.system

GEN = {"provider_id": "sim", "operation_type": "text_to_video", "params": {"prompt": "x", "duration": 1}}
ACC = {"provider_id": PROVIDER, "raw_data": {"token": "tok-bounds"}}
MB = 1024 * 1024


def gen(**change: Any) -> dict[str, Any]:
    return {**GEN, **change}


CASES = [  # (method, path, json body, status, words the message must contain)
    ("POST", "/generations", gen(priority=2**70), 422, "priority"),
    ("POST", "/generations", gen(priority=-(2**70)), 422, "priority"),
    ("POST", "/generations", gen(params={"prompt": "x", "image_url": "h" * (MB + 100)}), 413, "larger than"),
    (
        "POST",
        "/generations",
        gen(params={"prompt": "x", "image_url": "http://a/" + "h" * 70_000}),
        422,
        "params",
    ),
    ("POST", "/generations", gen(user_id="u" * (MB + 100)), 413, "larger than"),
    ("POST", "/generations", gen(user_id="u" * 300), 422, "user_id"),
    ("POST", "/generations", gen(account_id="a" * 200), 422, "account_id"),
    ("POST", "/generations", gen(account_id="../../etc/passwd"), 422, "account_id"),
    ("POST", "/generations", gen(provider_id="sim.x.>"), 422, "provider_id"),
    ("POST", "/generations", gen(operation_type="o" * 100), 422, "operation_type"),
    ("POST", "/generations", gen(priority="7"), 422, "priority"),  # no string-to-number coercion surprises
    ("POST", "/accounts", {**ACC, "email": "e" * 300 + "@example.com"}, 422, "email"),
    ("POST", "/accounts", {**ACC, "email": "e" * (MB + 100)}, 413, "larger than"),
    ("POST", "/accounts", {**ACC, "raw_data": {"token": "t" * 70_000}}, 422, "raw_data"),
    ("POST", "/accounts", {**ACC, "credits": {"sim": 2**70}}, 422, "credits"),
    ("POST", "/accounts", {**ACC, "credits": {"sim": -5}}, 422, "credits"),
    ("POST", "/accounts", {**ACC, "credits": {"Not A Type!": 5}}, 422, "credits"),
    ("POST", "/accounts", {**ACC, "concurrency_limit": 10**9}, 422, "concurrency_limit"),
    ("POST", "/accounts", {**ACC, "account_id": "injected"}, 422, "account_id"),
    ("POST", "/keys", {"name": "n" * 1000}, 422, "name"),
    ("POST", "/keys", {"name": "x", "limits": {"rate": -1}}, 422, "rate"),
]


async def books(secure: Any) -> dict[str, Any]:
    """Everything a request could have left behind."""
    db = secure.system.db
    found: dict[str, Any] = {
        c: await db[c].count_documents({})
        for c in ("generations", "accounts", "api_keys", "ledger", "idempotency_keys")
    }
    nc = await nats.connect(secure.servers.nats_url)
    try:
        js = nc.jetstream()
        for stream in (subjects.GENERATIONS_STREAM, subjects.ACCOUNTS_STREAM, subjects.CREDITS_STREAM):
            found[stream] = (await js.stream_info(stream)).state.messages
    finally:
        await nc.close()
    return found


async def test_out_of_bounds_input_is_refused_and_leaves_nothing(secure):
    api = secure.system.api
    account = (await api.post("/api/v1/accounts", json={**ACC, "credits": {"sim": 100}})).json()
    await secure.system.wait_account(
        account["id"], lambda v: v["balances"].get("sim", {}).get("balance") == 100
    )
    more = [
        (
            "POST",
            f"/accounts/{account['id']}/credits",
            {"credit_type": "sim", "amount": 2**70},
            422,
            "amount",
        ),
        ("POST", f"/accounts/{account['id']}/credits", {"credit_type": "sim", "amount": 0}, 422, "amount"),
        (
            "POST",
            f"/accounts/{account['id']}/credits",
            {"credit_type": "sim", "amount": 5, "reason": "r" * 5000},
            422,
            "reason",
        ),
        ("PATCH", f"/accounts/{account['id']}", {"priority": 2**70}, 422, "priority"),
        ("PATCH", f"/accounts/{account['id']}", {"concurrency_limit": 0}, 422, "concurrency_limit"),
    ]
    before = await books(secure)
    for method, path, body, status, words in CASES + more:
        resp = await api.request(method, f"/api/v1{path}", json=body)
        assert resp.status_code == status, (path, str(body)[:200], resp.status_code, resp.text[:300])
        error = resp.json()["error"]
        assert words in error["message"], (path, str(body)[:100], error)
        assert len(error["message"]) < 3000  # an error never echoes a megabyte back
    assert await books(secure) == before
    print(f"\n{len(CASES) + len(more)} hostile bodies refused, nothing stored or published")


async def test_oversized_streamed_bodies_are_cut_off(secure):
    api = secure.system.api
    before = await books(secure)

    async def chunks():
        for _ in range(64):  # 2 MiB without a Content-Length (chunked)
            yield b"[" * (32 * 1024)

    resp = await api.post(
        "/api/v1/generations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "body_too_large"
    huge = await api.post(
        "/api/v1/generations", content=b" " * (50 * MB), headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    assert await books(secure) == before


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/generations/phantom.x.%3E/events", 422, "invalid_request"),
        ("/generations/phantom.x.%3E/cancel", 422, "invalid_request"),
        ("/generations/" + "g" * 200, 422, "invalid_request"),
        ("/accounts/acc.%2A/ledger", 422, "invalid_request"),
        ("/keys/not-hex", 422, "invalid_request"),
        ("/generations?limit=100000", 422, "invalid_request"),
        ("/generations?status=exploded", 422, "invalid_request"),
        ("/generations?cursor=Zm9vYmFy", 400, "invalid_cursor"),
        ("/generations?cursor=" + "c" * 600, 422, "invalid_request"),
        ("/accounts?limit=0", 422, "invalid_request"),
        ("/accounts?cursor=Zm9vYmFy", 400, "invalid_cursor"),
        ("/providers/detect?url=" + "u" * 3000, 422, "invalid_request"),
        ("/providers/SIM.x.%3E", 422, "invalid_request"),
        ("/providers/..%2F..%2Fetc", 404, "not_found"),
    ],
)
async def test_bad_paths_and_queries_get_4xx_not_500(secure, path, status, code):
    method = "POST" if path.endswith("/cancel") else "GET"
    resp = await secure.system.api.request(method, f"/api/v1{path}")
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


async def test_accounts_are_paged(secure):
    api = secure.system.api
    made = [
        (await api.post("/api/v1/accounts", json={**ACC, "owner_id": "pager"})).json()["id"] for _ in range(5)
    ]
    seen, cursor = [], None
    while True:
        page = (
            await api.get(
                "/api/v1/accounts",
                params={"owner_id": "pager", "limit": 2, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        assert len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(made, reverse=True)  # newest first, each once


async def test_wrong_method_answers_405_with_allow(secure):
    resp = await secure.system.api.delete("/api/v1/generations")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
