"""The raw JetStream round trip, the baseline of the throughput scenario: nats-py `js.publish` with
`Nats-Msg-Id`, waiting for each PubAck (`inflight` publishers) -> a durable pull consumer (`fetch(100)`,
`ack()`), file storage, payload = one `GenerationRequested` JSON."""

from __future__ import annotations

import asyncio
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from pixsim_contracts import GenerationRequested, OperationType

from .load import PARAMS
from .measure import CpuMeter, pct


def payload() -> bytes:
    sample = GenerationRequested(
        event_id="x.requested",
        generation_id="x",
        provider_id="sim",
        operation_type=OperationType.TEXT_TO_VIDEO,
        params=PARAMS,
    )
    return sample.model_dump_json().encode()


async def raw_baseline(nats_url: str, n: int, inflight: int, pids: dict[str, int]) -> dict:
    body = payload()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream = "BENCH_RAW"
    await js.add_stream(
        StreamConfig(
            name=stream, subjects=["bench.raw.>"], storage=StorageType.FILE, duplicate_window=15 * 60
        )
    )
    psub = await js.pull_subscribe(
        "bench.raw.>",
        durable="bench-raw",
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60),
    )
    sent: dict[int, float] = {}
    latencies: list[float] = []
    acked = asyncio.Event()
    t_last_ack = 0.0

    async def consume() -> None:
        nonlocal t_last_ack
        got = 0
        while got < n:
            try:
                msgs = await psub.fetch(100, timeout=1)
            except nats.errors.TimeoutError:
                continue
            now = time.monotonic()
            for m in msgs:
                latencies.append(now - sent[int(m.headers["x-seq"])])
                await m.ack()
            got += len(msgs)
        await nc.flush()
        t_last_ack = time.monotonic()
        acked.set()

    queue = iter(range(n))

    async def publisher() -> None:
        for i in queue:
            sent[i] = time.monotonic()
            await js.publish(
                f"bench.raw.{i}.requested",
                body,
                timeout=10,
                headers={"Nats-Msg-Id": f"raw-{i}", "x-seq": str(i)},
            )

    cpu = CpuMeter(pids)
    consumer = asyncio.create_task(consume())
    t0 = time.monotonic()
    await asyncio.gather(*(publisher() for _ in range(inflight)))
    t_published = time.monotonic()
    await asyncio.wait_for(acked.wait(), 120)
    await consumer
    cpu_use = cpu.result()
    await js.delete_stream(stream)
    await nc.close()
    wall = t_last_ack - t0
    return {
        "messages": n,
        "inflight_publishers": inflight,
        "payload_bytes": len(body),
        "fetch_batch": 100,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(n / wall, 1),
        "publish_only_msgs_per_s": round(n / (t_published - t0), 1),
        "latency_p50_s": pct(latencies, 50),
        "latency_p95_s": pct(latencies, 95),
        "cpu": cpu_use,
    }
