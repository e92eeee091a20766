"""The programs the launcher needs (Java, Maven, Go) and one clear message when any is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from schemas.errors import ConfigurationError

MIN_JAVA_MAJOR = 17  # Apache Kafka 4.x brokers need Java 17 or newer

ALTERNATIVES = (
    "or run the services with `docker compose up -d kafka mongodb`, "
    "or point lineguard at running servers with KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI"
)


@dataclass(frozen=True, slots=True)
class Requirement:
    """A program the launcher needs for one step, and why."""

    program: str  # name looked up on PATH
    purpose: str  # e.g. "Java 17+ (runs the Kafka broker)"


JAVA = Requirement("java", f"Java {MIN_JAVA_MAJOR}+ (runs the Kafka broker)")
MAVEN = Requirement("mvn", "Maven (resolves the Kafka jars from Maven Central, first start only)")
GO = Requirement("go", "Go (builds FerretDB when mongod is not installed, first start only)")


def which(program: str) -> str | None:
    return shutil.which(program)


def require(requirements: Sequence[Requirement]) -> dict[str, str]:
    """Paths of the required programs; ConfigurationError naming *all* missing ones at once otherwise."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for requirement in requirements:
        path = which(requirement.program)
        if path is None:
            missing.append(f"{requirement.program} — {requirement.purpose}")
        else:
            found[requirement.program] = path
    if missing:
        raise ConfigurationError(
            f"the local stack needs programs that are not on PATH: {'; '.join(missing)}. "
            f"Install them, {ALTERNATIVES}."
        )
    if JAVA.program in found:
        check_java_version(found[JAVA.program])
    return found


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output: '17.0.15' -> 17, '1.8.0_392' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:  # Java 8 and older report "1.x"
        return int(match.group(2))
    return major


def check_java_version(java: str) -> None:
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"could not run `{java} -version` ({exc}); {ALTERNATIVES}") from exc
    major = parse_java_major(result.stderr + result.stdout)
    if major is not None and major < MIN_JAVA_MAJOR:
        raise ConfigurationError(
            f"{java} is Java {major}; Apache Kafka 4 needs Java {MIN_JAVA_MAJOR} or newer. "
            f"Install a newer JDK (or set PATH to one), {ALTERNATIVES}."
        )
