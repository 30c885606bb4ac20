"""The sim fake for the bench: `python -m pixsim_provider_sdk.testing.fake_http`, with a listen backlog and
counters of the status calls it answers.

    python bench/sim_fake.py BACKLOG providers/sim --port 0 --knob latency=0

The fake's stdlib `ThreadingHTTPServer` listens with socketserver's default backlog of 5. When the
dispatcher (20 jobs at once) and the poller (50) open new keep-alive connections in a burst, the
connections beyond the backlog are reset (`httpx.ReadError`) or stall ~1 s, which the adapter reports
as `ProviderUnavailableError` and the pipeline retries. A real provider does not do that, so the bench
raises the backlog (pass 5 to see the fake's own behaviour). The rest is the fake's own command line.

`GET /_bench/jobs` (no auth) answers every job the fake holds: its id, the client's reference (the
generation id), when it was created and how long it runs (`time.monotonic()` of this machine), and the
times of every status call (`GET /v1/jobs/{id}`) it got. The fake's request log is capped, so a run with
tens of thousands of jobs does not fill the memory.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from typing import Any
from urllib.parse import urlsplit

from pixsim_provider_sdk.testing import fake_http
from pixsim_provider_sdk.testing.fake_http import FakeRequest, FakeResponse, json_response

STATUS_CALL = re.compile(r"/v1/jobs/(?P<id>[^/]+)")


def set_backlog(backlog: int) -> None:
    fake_http._Server.request_queue_size = backlog


class StatusCalls:
    """Counts, per job, the status calls a fake answers, with their times; serves them on /_bench/jobs."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.polls: dict[str, list[float]] = defaultdict(list)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        fake.requests = deque(maxlen=1000)  # the fake appends every request; keep only the last ones
        inner = fake.handle

        def handle(
            method: str, target: str, headers: dict[str, str], body: bytes, base_url: str
        ) -> FakeResponse:
            now = time.monotonic()
            path = urlsplit(target).path
            match = STATUS_CALL.fullmatch(path) if method == "GET" else None
            with self._lock:
                self.calls[f"{method} {re.sub(r'/(job|upl)_[^/.]+', '/{id}', path)}"] += 1
                if match:
                    self.polls[match["id"]].append(now)
            return inner(method, target, headers, body, base_url)

        fake.handle = handle
        fake.add_route("GET", r"/_bench/jobs", self.report)

    def report(self, _req: FakeRequest) -> FakeResponse:
        # Runs under the fake's own lock (it routes one request at a time): its jobs do not change meanwhile.
        with self._lock:
            jobs = [
                {
                    "id": job.id,
                    "reference": job.reference,
                    "created": job.started,
                    "latency": job.latency,
                    "polls": list(self.polls.get(job.id, ())),
                }
                for job in self.fake.jobs.values()
            ]
            calls = dict(self.calls)
        return json_response({"now": time.monotonic(), "jobs": jobs, "calls": calls})


if __name__ == "__main__":
    set_backlog(int(sys.argv[1]))
    load_fake = fake_http.load_fake

    def load_counted(folder: Any) -> Any:
        create = load_fake(folder)

        def create_counted(**knobs: Any) -> Any:
            fake = create(**knobs)
            StatusCalls(fake)
            return fake

        return create_counted

    fake_http.load_fake = load_counted  # main() builds the fake through load_fake
    sys.exit(fake_http.main(sys.argv[2:]))
