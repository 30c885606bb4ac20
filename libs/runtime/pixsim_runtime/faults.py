"""Fault injection points for crash tests: off unless `PIXSIM_FAULT_POINT` names a point.

Code marks the gaps between its writes with `await fault_point("billing.after_fold")` (or the sync
`fault_point_sync`). With `PIXSIM_FAULT_POINT=billing.after_fold` the process SIGKILLs itself the
first time it gets there, exactly as a crash or an OOM kill would stop it: no clean-up, no ack.
`name@N` kills on the N-th time instead, and several points can be given, comma-separated. Production
never sets the variable, and then a point costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

ENV = "PIXSIM_FAULT_POINT"

log = logging.getLogger(__name__)

_armed: dict[str, int] | None = None
_hits: dict[str, int] = {}


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        armed[name] = int(nth) if nth else 1
    return armed


def armed() -> dict[str, int]:
    global _armed
    if _armed is None:
        _armed = _parse(os.environ.get(ENV, ""))
    return _armed


def fault_point_sync(name: str) -> None:
    """SIGKILL this process here if `PIXSIM_FAULT_POINT` arms `name` (and this is the armed hit)."""
    points = armed()
    if not points or name not in points:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == points[name]:
        print(f"pixsim fault point {name}: SIGKILL (pid {os.getpid()})", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


async def fault_point(name: str) -> None:
    fault_point_sync(name)
