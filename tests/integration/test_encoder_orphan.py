"""A relay killed outright does not leave its encoder process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RELAY_LIKE = textwrap.dedent("""
    import functools, os, sys, time
    from infra.kafka.encoder import EncoderProcess
    from services.bootstrap import store_mapper

    if __name__ == "__main__":
        encoder = EncoderProcess(functools.partial(store_mapper, None), os.urandom(32))
        pool = encoder.start()
        print(next(iter(pool._processes)), flush=True)  # the child's pid
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_encoder_process_ends_when_the_relay_is_killed(tmp_path):
    script = tmp_path / "relay_like.py"
    script.write_text(RELAY_LIKE)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,  # noqa: S603
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        child = int((parent.stdout.readline() if parent.stdout else "").strip())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), f"encoder process {child} outlived the relay's"
    finally:
        if parent.poll() is None:
            parent.kill()
