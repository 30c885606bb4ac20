"""The sim fake for the bench: `python -m pixsim_provider_sdk.testing.fake_http`, with a listen backlog.

    python bench/sim_fake.py BACKLOG providers/sim --port 0 --knob latency=0

The fake's stdlib `ThreadingHTTPServer` listens with socketserver's default backlog of 5. When the
dispatcher (20 jobs at once) and the poller (50) open new keep-alive connections in a burst, the
connections beyond the backlog are reset (`httpx.ReadError`) or stall ~1 s, which the adapter reports
as `ProviderUnavailableError` and the pipeline retries. A real provider does not do that, so the bench
raises the backlog (pass 5 to see the fake's own behaviour). The rest is the fake's own command line.
"""

from __future__ import annotations

import sys

from pixsim_provider_sdk.testing import fake_http


def set_backlog(backlog: int) -> None:
    fake_http._Server.request_queue_size = backlog


if __name__ == "__main__":
    set_backlog(int(sys.argv[1]))
    sys.exit(fake_http.main(sys.argv[2:]))
