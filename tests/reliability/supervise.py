"""Run a command, and run it again whenever it exits: what the production units do for every process
(``Restart=always``, ``RestartSec=1`` in deploy/systemd/).

``python -m tests.reliability.supervise COMMAND...``. SIGTERM and SIGINT are passed to the command and
end the loop. The faulty stack needs it because a Celery worker can exit on a lost broker connection:
on the way out kombu restores the unacknowledged messages through the connection it has just lost
("Unrecoverable error: AttributeError: 'NoneType' object has no attribute 'hostname'", kombu 5.7.0).
In production the unit starts the worker again and the sweepers re-enqueue from PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

RESTART_AFTER = 1.0


def main(command: list[str]) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return code
        print(f"supervise: exited with {code}; starting it again in {RESTART_AFTER:g} s", file=sys.stderr, flush=True)
        time.sleep(RESTART_AFTER)
        if stopping:
            return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
