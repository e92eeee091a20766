"""The MongoDB wire-protocol server of the local stack: ``mongod`` when installed, else FerretDB (SQLite
backend) built once from the Go module proxy."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from lineguard.stack import processes
from lineguard.stack.locks import file_lock
from lineguard.stack.processes import Progress
from lineguard.stack.tools import GO, require, which
from schemas.errors import LineguardError

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
MONGOD = "mongod"
FERRETDB = "ferretdb"


def pick_server() -> str:
    """``mongod`` if it is on PATH (the real thing), else FerretDB."""
    return MONGOD if which(MONGOD) else FERRETDB


def ferretdb_binary(cache_dir: Path, version: str) -> Path:
    return cache_dir / f"ferretdb-{version}" / "ferretdb"


def ensure_ferretdb(cache_dir: Path, version: str, progress: Progress) -> Path:
    """The FerretDB binary, built from the module proxy's source on first use and cached.

    Not ``go install ...@version``: FerretDB reads its version from ``build/version/version.txt``, which
    its release process writes and the module zip lacks, so a ``go install`` build panics at start
    ("Invalid build/version/version.txt"). We take the module source, write that file and build.
    """
    binary = ferretdb_binary(cache_dir, version)
    if os.access(binary, os.X_OK):
        return binary
    lock = binary.parent.parent / f"{binary.parent.name}.lock"
    with file_lock(lock, timeout_s=1800, what=f"FerretDB {version} build", on_wait=progress):
        if os.access(binary, os.X_OK):
            return binary
        go = require([GO])[GO.program]
        binary.parent.mkdir(parents=True, exist_ok=True)
        build_log = binary.parent / "build.log"
        progress(f"building FerretDB {version} from the Go module proxy (first start only, a few minutes)")
        module_dir = _download_module(go, version, binary.parent)
        with tempfile.TemporaryDirectory(prefix="src-", dir=binary.parent) as scratch:
            source = Path(scratch) / "FerretDB"
            shutil.copytree(module_dir, source)
            _make_writable(source)  # the module cache is read-only
            (source / "build" / "version" / "version.txt").write_text(version + "\n", encoding="utf-8")
            partial = binary.with_name("ferretdb.partial")
            compiled = 0

            def count_packages(_line: str) -> str:  # `go build -v` prints each package as it compiles
                nonlocal compiled
                compiled += 1
                return f"{compiled} packages compiled"

            processes.run_step(
                [go, "build", "-v", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
                label="go build ferretdb",
                log_path=build_log,
                progress=progress,
                cwd=source,
                on_line=count_packages,
                # The copied source is not a VCS checkout: do not let go build look for one.
                env={**os.environ, "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -buildvcs=false").strip()},
            )
            partial.rename(binary)
        progress(f"FerretDB {version} built: {binary}")
    return binary


def _download_module(go: str, version: str, workdir: Path) -> Path:
    """Fetch the FerretDB module source into the Go module cache and return its directory."""
    try:
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{version}"],
            cwd=workdir,  # outside any Go module, so the module is fetched standalone
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LineguardError(f"go mod download {FERRETDB_MODULE}@{version} failed: {exc}") from exc
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        detail = info.get("Error") or result.stderr.strip() or result.stdout.strip()
        raise LineguardError(f"go mod download {FERRETDB_MODULE}@{version} failed: {detail}")
    return Path(info["Dir"])


def _make_writable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in [".", *filenames]:
            path = Path(dirpath) / name
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def ferretdb_command(binary: Path, host: str, port: int, data_dir: Path) -> list[str]:
    return [
        str(binary),
        "--handler=sqlite",
        f"--sqlite-url=file:{data_dir}/",
        f"--listen-addr={host}:{port}",
        f"--state-dir={data_dir}",
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=info",
    ]


def mongod_command(mongod: str, host: str, port: int, data_dir: Path) -> list[str]:
    return [mongod, "--dbpath", str(data_dir), "--bind_ip", host, "--port", str(port), "--nounixsocket"]


def ping(uri: str, timeout_s: float = 2.0) -> bool:
    """Does the server answer MongoDB's ``ping`` command?"""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    timeout_ms = int(timeout_s * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        return client.admin.command("ping").get("ok") == 1
    except PyMongoError:
        return False
    finally:
        client.close()
