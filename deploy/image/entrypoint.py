"""The container's entrypoint: one image, one role per container.

    docker run pixsim gateway            # or: PIXSIM_ROLE=gateway docker run pixsim

A role is a service; it runs the service's console script (`pixsim-<role>`) in this process's place,
so signals from the container runtime reach uvicorn directly. Standard library only: it runs before
anything else is imported.
"""

from __future__ import annotations

import os
import sys

#: Every role the image can play; a test checks these are exactly the services' console scripts.
ROLES = ("gateway", "dispatcher", "poller", "billing")
USAGE = f"usage: entrypoint.py {{{'|'.join(ROLES)}}}   (or set PIXSIM_ROLE)"


def command_for(role: str) -> list[str]:
    """The command line that runs `role`; ValueError for anything else."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
    return [f"pixsim-{role}"]


def main(argv: list[str]) -> int:
    role = argv[0] if argv else os.environ.get("PIXSIM_ROLE", "")
    if not role or len(argv) > 1:
        print(USAGE, file=sys.stderr)
        return 64  # EX_USAGE
    try:
        command = command_for(role)
    except ValueError as exc:
        print(f"{exc}\n{USAGE}", file=sys.stderr)
        return 64
    os.execvp(command[0], command)  # replaces this process: PID 1 becomes the service


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
