"""The archiver killed mid-copy: the copy is redone whole, once; the generation stays `completed`.

The archiver runs against the real MongoDB and a real `LocalStore`; the provider's CDN is a local HTTP
server (the outside world) that sends a result slowly, so the copy can be stopped halfway."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import PROVIDERS
from pixsim_contracts import GenerationCompleted, GenerationRequested, OperationType
from pixsim_gateway.archive import ARCHIVES, Archiver
from pixsim_gateway.projections import GENERATIONS, Projector
from pixsim_provider_sdk import discover
from pixsim_provider_sdk.safe_fetch import allow_in_env
from pixsim_runtime.storage import Storage, StorageSettings
from pymongo import AsyncMongoClient
from support import Commands, mongo_db

VIDEO = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 400  # ~100 KB


class SlowCdn:
    """Serves VIDEO in 4 KB pieces with a pause after each; counts whole and started downloads."""

    def __init__(self, pause_s: float = 0.01) -> None:
        cdn = self
        self.started = threading.Event()
        self.requests = 0
        self.completed = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cdn.requests += 1
                self.send_response(200)
                self.send_header("content-type", "video/mp4")
                self.send_header("content-length", str(len(VIDEO)))
                self.end_headers()
                try:
                    for i in range(0, len(VIDEO), 4096):
                        if i + 4096 >= len(VIDEO):  # counted before the client can have every byte
                            cdn.completed += 1
                        self.wfile.write(VIDEO[i : i + 4096])
                        self.wfile.flush()
                        cdn.started.set()
                        time.sleep(pause_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def cdn():
    server = SlowCdn()
    allow_in_env(server.url)
    yield server
    server.server.shutdown()


async def test_a_copy_killed_midway_completes_once_and_the_generation_stays_completed(servers, cdn, tmp_path):
    db = mongo_db(servers.mongo_url, f"archiver_{uuid.uuid4().hex[:8]}")
    gid = uuid.uuid4().hex
    result = {"video_url": f"{cdn.url}/{gid}.mp4"}
    projector = Projector(db)
    await projector.apply(
        GenerationRequested(
            event_id=f"{gid}.requested",
            generation_id=gid,
            provider_id="sim",
            operation_type=OperationType.TEXT_TO_VIDEO,
            user_id="u",
        )
    )
    completed = GenerationCompleted(
        event_id=f"{gid}.completed",
        generation_id=gid,
        provider_id="sim",
        account_id="system-sim",
        result=result,
    )
    await projector.apply(completed)
    storage = Storage.from_settings(StorageSettings(PIXSIM_STORAGE_URL=f"file://{tmp_path}"))
    ctx = SimpleNamespace(db=db, registry=discover(PROVIDERS, include_entry_points=False, only=["sim"]))
    archiver = Archiver(
        ctx, storage, None, max_bytes=10**7, retention_days=0, retry_s=1, retry_max_s=1, retry_for_s=60
    )

    copying = asyncio.create_task(archiver.archive(completed))
    await asyncio.to_thread(cdn.started.wait, 10)
    copying.cancel()  # the process dies mid-copy: no ack, so JetStream delivers the event again
    with pytest.raises(asyncio.CancelledError):
        await copying
    key = f"results/{gid}/result.mp4"
    assert await storage.size(key) is None  # nothing half-written under the key
    assert not list(Path(tmp_path).rglob("*.mp4"))
    assert (await db[ARCHIVES].find_one({"_id": gid}))["objects"] == {}

    assert await archiver.archive(completed) is None  # the redelivery
    record = await db[ARCHIVES].find_one({"_id": gid})
    assert record["status"] == "archived" and isinstance(record["archived_at"], datetime)
    assert record["objects"]["result"]["sha256"] == hashlib.sha256(VIDEO).hexdigest()
    stored = b"".join([c async for c in storage.stream(key)])
    assert stored == VIDEO and cdn.completed == 1

    requests = cdn.requests
    assert await archiver.archive(completed) is None  # once more: changes nothing, fetches nothing
    assert await db[ARCHIVES].find_one({"_id": gid}) == record and cdn.requests == requests
    generation = await db[GENERATIONS].find_one({"_id": gid})
    assert generation["status"] == "completed" and generation["result"] == result


async def test_content_that_is_not_what_the_url_says_is_not_archived(servers, tmp_path):
    """A `video_url` whose bytes are not a video: recorded as an archive_error, retried later."""

    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>an error page</html>"
            self.send_response(200)
            self.send_header("content-type", "video/mp4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    allow_in_env(url)
    try:
        db = mongo_db(servers.mongo_url, f"archiver_{uuid.uuid4().hex[:8]}")
        gid = uuid.uuid4().hex
        event = GenerationCompleted(
            event_id=f"{gid}.completed",
            generation_id=gid,
            provider_id="sim",
            account_id="system-sim",
            result={"video_url": f"{url}/x.mp4"},
        )
        storage = Storage.from_settings(StorageSettings(PIXSIM_STORAGE_URL=f"file://{tmp_path}"))
        ctx = SimpleNamespace(db=db, registry=discover(PROVIDERS, include_entry_points=False, only=["sim"]))
        archiver = Archiver(
            ctx, storage, None, max_bytes=10**7, retention_days=1, retry_s=2, retry_max_s=5, retry_for_s=60
        )
        assert await archiver.archive(event) == 2  # try again in 2 s
        assert await archiver.archive(event) == 4
        record = await db[ARCHIVES].find_one({"_id": gid})
        assert record["status"] == "pending" and record["attempts"] == 2
        assert "not a video" in record["archive_error"]
    finally:
        server.shutdown()


async def test_retention_deletes_the_stored_copy_when_it_ends(servers, tmp_path):
    cdn = SlowCdn(pause_s=0)
    allow_in_env(cdn.url)
    try:
        db = mongo_db(servers.mongo_url, f"archiver_{uuid.uuid4().hex[:8]}")
        gid = uuid.uuid4().hex
        event = GenerationCompleted(
            event_id=f"{gid}.completed",
            generation_id=gid,
            provider_id="sim",
            account_id="system-sim",
            result={"video_url": f"{cdn.url}/v.mp4"},
        )
        storage = Storage.from_settings(StorageSettings(PIXSIM_STORAGE_URL=f"file://{tmp_path}"))
        ctx = SimpleNamespace(db=db, registry=discover(PROVIDERS, include_entry_points=False, only=["sim"]))
        archiver = Archiver(
            ctx, storage, None, max_bytes=10**7, retention_days=7, retry_s=1, retry_max_s=1, retry_for_s=60
        )
        assert await archiver.archive(event) is None
        record = await db[ARCHIVES].find_one({"_id": gid})
        key = record["objects"]["result"]["key"]
        assert await storage.size(key) == len(VIDEO)
        assert isinstance(record["expires_at"], datetime)
        assert await archiver.sweep(record["archived_at"]) == 0  # not yet
        assert await archiver.sweep(record["expires_at"]) == 1
        assert await storage.size(key) is None
        assert (await db[ARCHIVES].find_one({"_id": gid}))["status"] == "expired"
    finally:
        cdn.server.shutdown()


async def test_archives_running_at_once_share_their_record_writes(servers, tmp_path):
    """Four results archived at once (the consumer's batch): each ends `archived` with its own copy, and
    their first records cost one insert between them, not four."""
    cdn = SlowCdn(pause_s=0)
    allow_in_env(cdn.url)
    commands = Commands()
    client = AsyncMongoClient(servers.mongo_url, tz_aware=True, event_listeners=[commands])
    try:
        db = client[f"archiver_{uuid.uuid4().hex[:8]}"]
        events = [
            GenerationCompleted(
                event_id=f"{gid}.completed",
                generation_id=gid,
                provider_id="sim",
                account_id="system-sim",
                result={"video_url": f"{cdn.url}/{gid}.mp4"},
            )
            for gid in (uuid.uuid4().hex for _ in range(4))
        ]
        storage = Storage.from_settings(StorageSettings(PIXSIM_STORAGE_URL=f"file://{tmp_path}"))
        ctx = SimpleNamespace(db=db, registry=discover(PROVIDERS, include_entry_points=False, only=["sim"]))
        archiver = Archiver(
            ctx, storage, None, max_bytes=10**7, retention_days=0, retry_s=1, retry_max_s=1, retry_for_s=60
        )
        commands.sent.clear()
        assert await asyncio.gather(*(archiver.archive(e) for e in events)) == [None] * 4
        records = await db[ARCHIVES].find().to_list()
        assert sorted(r["_id"] for r in records) == sorted(e.generation_id for e in events)
        assert {r["status"] for r in records} == {"archived"}
        for record in records:
            assert await storage.size(record["objects"]["result"]["key"]) == len(VIDEO)
        # started together, their first records went together (the final ones share a write only when
        # their copies end at the same moment, which this test does not arrange)
        inserts = [c for c in commands.sent if c == f"insert {ARCHIVES}"]
        assert inserts == [f"insert {ARCHIVES}"], commands.sent
    finally:
        await client.close()
        cdn.server.shutdown()
