"""Bad-input corpus and seeded file mutations, shared by the tests and ``benchmarks/fuzz.py``."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging the suite (e.g. if a named pipe were opened for reading)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def succeeded(stdout: str) -> list[str]:
    """The paths of a command's JSON records that are not failures (classify's records include its failures)."""
    return [record["path"] for record in map(json.loads, stdout.splitlines()) if not record.get("error")]
