"""``lineguard console`` as a user runs it: users made by ``console user add``, the server started by the
command, sign-in over HTTP; bad input is one line and exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from pymongo.database import Database

from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from tests.integration.test_console_support import free_port

pytestmark = pytest.mark.integration


def _lineguard(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_user_add_then_serve_and_sign_in(
    endpoints: Endpoints, mongo_db: Database[dict[str, Any]], topics: TopicNames
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "MONGODB_URI": endpoints.mongodb_uri,
        "LINEGUARD_MONGODB_DATABASE": mongo_db.name,
    }
    env.pop("LINEGUARD_CONSOLE_PASSWORD", None)
    added = _lineguard(
        ["console", "user", "add", "rita", "--role", "reviewer", "--password-stdin"], env, "pw-rita-123\n"
    )
    assert added.returncode == 0, added.stderr
    assert "pw-rita-123" not in added.stdout + added.stderr
    listed = _lineguard(["console", "user", "list"], env)
    assert listed.stdout.strip() == "rita\treviewer"

    short = _lineguard(["console", "user", "add", "bob", "--password-stdin"], env, "short\n")
    assert short.returncode == 2
    assert short.stderr.strip().splitlines() == ["error: a password needs at least 8 characters"]
    bad_role = _lineguard(
        ["console", "user", "add", "bob", "--role", "boss", "--password-stdin"], env, "x" * 9
    )
    assert (bad_role.returncode, "Traceback" in bad_role.stderr) == (2, False)
    no_password = _lineguard(["console", "user", "add", "bob"], env)  # stdin is not a terminal
    assert no_password.returncode == 2 and "--password-stdin" in no_password.stderr

    port = free_port()
    prefix = topics.frames.removesuffix(".frames")
    server = subprocess.Popen(
        [sys.executable, "-m", "lineguard.cli", "console", "--port", str(port), "--topic-prefix", prefix],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the console did not answer"
            time.sleep(0.3)
        busy = _lineguard(["console", "--port", str(port)], env)
        assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        signed = client.post("/api/session", json={"name": "rita", "password": "pw-rita-123"})
        assert signed.status_code == 200 and signed.json()["role"] == "reviewer"
        assert client.get("/api/review/queue").json() == {"items": []}
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert "pw-rita-123" not in stderr and "Traceback" not in stderr
