"""Warn about ``LINEGUARD_*`` environment variables that nothing reads: a misspelt one changes nothing and
says nothing (a worker given ``..._MAX_BATCH`` for ``..._MAX_BATCH_SIZE`` keeps its default batch size).

The known names are a static table, so a command pays for no imports to check them (``lineguard --help``
stays light): every option's ``envvar``, every pydantic settings field with its ``env_prefix`` (or its
``LINEGUARD_*`` aliases) and the names read straight from ``os.environ`` or by the deploy tooling.
``tests/unit/test_env_check.py`` computes the same set from the code and fails when the table drifts.
The running command's own option variables are added at run time, so a new option is never warned about.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from typer.core import TyperGroup

if TYPE_CHECKING:  # typer vendors click; these are the types its commands and contexts have
    from typer._click.core import Command, Context

log = logging.getLogger("lineguard.env")

PREFIX = "LINEGUARD_"
ARGS_KEY = "lineguard.subcommand_args"  # ctx.meta: the arguments after the root's own options

# Option variables and settings fields (computed by the test; keep sorted).
SETTINGS_AND_OPTIONS: frozenset[str] = frozenset(
    (
        "LINEGUARD_CAMERA_CAMERA_ID",
        "LINEGUARD_CAMERA_CLAIM_CHECK",
        "LINEGUARD_CAMERA_CLAIM_CHECK_BUCKET",
        "LINEGUARD_CAMERA_CLAIM_CHECK_MAX_BYTES",
        "LINEGUARD_CAMERA_CLOSE_TIMEOUT_S",
        "LINEGUARD_CAMERA_COUNT",
        "LINEGUARD_CAMERA_ENCODING",
        "LINEGUARD_CAMERA_FIRST_FRAME_NUMBER",
        "LINEGUARD_CAMERA_FPS",
        "LINEGUARD_CAMERA_INLINE_LIMIT",
        "LINEGUARD_CAMERA_LINE_ID",
        "LINEGUARD_CAMERA_METRICS_PORT",
        "LINEGUARD_CAMERA_PARTITIONS",
        "LINEGUARD_CAMERA_QUALITY",
        "LINEGUARD_CAMERA_RESIZE",
        "LINEGUARD_CAMERA_SOURCE",
        "LINEGUARD_CAMERA_SPOOL",
        "LINEGUARD_CAMERA_SPOOL_DIR",
        "LINEGUARD_CAMERA_SPOOL_FSYNC",
        "LINEGUARD_CAMERA_SPOOL_MAX_MB",
        "LINEGUARD_CAMERA_SPOOL_POLICY",
        "LINEGUARD_CAMERA_STATION_ID",
        "LINEGUARD_CAMERA_TOPIC",
        "LINEGUARD_CLAIMCHECK_BUCKET",
        "LINEGUARD_CLAIMCHECK_EVERY_S",
        "LINEGUARD_CLAIMCHECK_MARGIN_S",
        "LINEGUARD_CLAIMCHECK_TOPIC",
        "LINEGUARD_CONSOLE_COLLECTION",
        "LINEGUARD_CONSOLE_HOST",
        "LINEGUARD_CONSOLE_PORT",
        "LINEGUARD_CONSOLE_SECURE_COOKIES",
        "LINEGUARD_CONSOLE_TOPIC_PREFIX",
        "LINEGUARD_CONSOLE_WORKER_GROUP",
        "LINEGUARD_COUNTERS_BATCH_SIZE",
        "LINEGUARD_COUNTERS_GROUP",
        "LINEGUARD_COUNTERS_OUTAGE_TIMEOUT_S",
        "LINEGUARD_COUNTERS_PREFIX",
        "LINEGUARD_COUNTERS_RETENTION_S",
        "LINEGUARD_COUNTERS_TOPIC",
        "LINEGUARD_COUNTERS_TOPIC_PREFIX",
        "LINEGUARD_COUNTERS_WINDOW_S",
        "LINEGUARD_DEVICE",
        "LINEGUARD_GATE_FALSE_REJECT_BUDGET",
        "LINEGUARD_GATE_LINE_BUDGETS",
        "LINEGUARD_GATE_MIN_FRAMES",
        "LINEGUARD_GATE_MIN_LABELLED",
        "LINEGUARD_KAFKA_BOOTSTRAP_SERVERS",
        "LINEGUARD_KAFKA_EXTRA",
        "LINEGUARD_KAFKA_SASL_MECHANISM",
        "LINEGUARD_KAFKA_SASL_PASSWORD",
        "LINEGUARD_KAFKA_SASL_USERNAME",
        "LINEGUARD_KAFKA_SECURITY_PROTOCOL",
        "LINEGUARD_KAFKA_SSL_CA_LOCATION",
        "LINEGUARD_KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
        "LINEGUARD_KAFKA_TOPIC_REPLICATION_FACTOR",
        "LINEGUARD_LAG_GROUP",
        "LINEGUARD_LAG_INTERVAL_S",
        "LINEGUARD_LAG_PORT",
        "LINEGUARD_LAG_SILENT_AFTER_S",
        "LINEGUARD_LAG_TOPIC",
        "LINEGUARD_LOG_FORMAT",
        "LINEGUARD_LOG_LEVEL",
        "LINEGUARD_MODEL_REGISTRY_CACHE_DIR",
        "LINEGUARD_MODEL_REGISTRY_DATABASE",
        "LINEGUARD_MODEL_REGISTRY_LOCATION",
        "LINEGUARD_MONGODB_DATABASE",
        "LINEGUARD_MONGODB_URI",
        "LINEGUARD_MONGODB_WRITE_CONCERN_JOURNAL",
        "LINEGUARD_MONGODB_WRITE_CONCERN_W",
        "LINEGUARD_PARTS_GROUP",
        "LINEGUARD_PARTS_PARTITIONS",
        "LINEGUARD_PARTS_RULES",
        "LINEGUARD_PARTS_TOPIC_PREFIX",
        "LINEGUARD_PLC_CONFIG",
        "LINEGUARD_PLC_GROUP",
        "LINEGUARD_PLC_TOPIC",
        "LINEGUARD_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        "LINEGUARD_SCHEMA_REGISTRY_URL",
        "LINEGUARD_SHADOW_CAMERA",
        "LINEGUARD_SHADOW_COLLECTION",
        "LINEGUARD_SHADOW_DECODE_THREADS",
        "LINEGUARD_SHADOW_INFERENCE_THREADS",
        "LINEGUARD_SHADOW_LINE",
        "LINEGUARD_SHADOW_METRICS_PORT",
        "LINEGUARD_SHADOW_MODEL",
        "LINEGUARD_SHADOW_SAMPLE_EVERY",
        "LINEGUARD_SHADOW_TOPIC",
        "LINEGUARD_SHADOW_VERSION",
        "LINEGUARD_SINK_BATCH_SIZE",
        "LINEGUARD_SINK_GROUP",
        "LINEGUARD_SINK_INSTANCE_ID",
        "LINEGUARD_SINK_OUTAGE_TIMEOUT_S",
        "LINEGUARD_SINK_STARTUP_TIMEOUT_S",
        "LINEGUARD_SINK_TOPIC",
        "LINEGUARD_SINK_TOPIC_PREFIX",
        "LINEGUARD_SINK_WINDOW_S",
        "LINEGUARD_STACK_CACHE_DIR",
        "LINEGUARD_STACK_FERRETDB_VERSION",
        "LINEGUARD_STACK_KAFKA_HEAP_MB",
        "LINEGUARD_STACK_KAFKA_VERSION",
        "LINEGUARD_STACK_SECURE",
        "LINEGUARD_STACK_START_TIMEOUT_S",
        "LINEGUARD_STACK_STATE_DIR",
        "LINEGUARD_TAIL_CAMERA",
        "LINEGUARD_TAIL_LINE",
        "LINEGUARD_TAIL_VERDICT",
        "LINEGUARD_WORKER_AUTO_OFFSET_RESET",
        "LINEGUARD_WORKER_BACKEND",
        "LINEGUARD_WORKER_CLAIM_CHECK_BUCKET",
        "LINEGUARD_WORKER_COMMIT_INTERVAL_MS",
        "LINEGUARD_WORKER_CREATE_TOPICS",
        "LINEGUARD_WORKER_CROP_SIZE",
        "LINEGUARD_WORKER_DEADLINE_FAIL_SAFE",
        "LINEGUARD_WORKER_DEADLINE_LINES",
        "LINEGUARD_WORKER_DEADLINE_MS",
        "LINEGUARD_WORKER_DEAD_LETTER_TOPIC",
        "LINEGUARD_WORKER_DECODE_THREADS",
        "LINEGUARD_WORKER_DEFECT_EVENTS_TOPIC",
        "LINEGUARD_WORKER_DEVICE",
        "LINEGUARD_WORKER_DRAIN_TIMEOUT_S",
        "LINEGUARD_WORKER_EXACTLY_ONCE",
        "LINEGUARD_WORKER_FRAMES_TOPIC",
        "LINEGUARD_WORKER_GROUP_ID",
        "LINEGUARD_WORKER_HEARTBEAT_INTERVAL_MS",
        "LINEGUARD_WORKER_INFERENCE_THREADS",
        "LINEGUARD_WORKER_LINE",
        "LINEGUARD_WORKER_MAX_BATCH_SIZE",
        "LINEGUARD_WORKER_MAX_IMAGE_PIXELS",
        "LINEGUARD_WORKER_MAX_IN_FLIGHT",
        "LINEGUARD_WORKER_MAX_MESSAGE_BYTES",
        "LINEGUARD_WORKER_MAX_POLL_INTERVAL_MS",
        "LINEGUARD_WORKER_MAX_WAIT_MS",
        "LINEGUARD_WORKER_METRICS_HOST",
        "LINEGUARD_WORKER_METRICS_PORT",
        "LINEGUARD_WORKER_MODEL",
        "LINEGUARD_WORKER_MONGO_COLLECTION",
        "LINEGUARD_WORKER_QUEUED_MAX_MESSAGES_KBYTES",
        "LINEGUARD_WORKER_RECIPES",
        "LINEGUARD_WORKER_RECIPE_TOPIC",
        "LINEGUARD_WORKER_REGISTRY",
        "LINEGUARD_WORKER_RESULTS_TOPIC",
        "LINEGUARD_WORKER_ROLE",
        "LINEGUARD_WORKER_SESSION_TIMEOUT_MS",
        "LINEGUARD_WORKER_STARTUP_TIMEOUT_S",
        "LINEGUARD_WORKER_THRESHOLDS",
        "LINEGUARD_WORKER_TOPIC_PARTITIONS",
        "LINEGUARD_WORKER_TOPIC_PREFIX",
        "LINEGUARD_WORKER_TRANSACTION_TIMEOUT_MS",
        "LINEGUARD_WORKER_UNCERTAIN_EVENTS",
        "LINEGUARD_WORKER_WORKER_ID",
    )
)

# Read directly (os.environ) or by the deploy tooling and tests, not through an option or settings class.
READ_DIRECTLY: frozenset[str] = frozenset(
    (
        "LINEGUARD_CACHE_DIR",  # infra/settings.py and deploy/tools/install-*.sh: the cache directory
        "LINEGUARD_CONSOLE_PASSWORD",  # lineguard console user add: the password when not on stdin
        "LINEGUARD_DEMO_PARENT_PID",  # lineguard demo: set for its worker child
        "LINEGUARD_COMPOSE_VERSION",  # deploy/tools/install-compose.sh
        "LINEGUARD_KUSTOMIZE_VERSION",  # deploy/tools/install-kustomize.sh
        "LINEGUARD_KAFKA_PASSWORD",  # docker-compose.secure.yml (interpolated by compose)
        "LINEGUARD_MONGODB_PASSWORD",  # docker-compose.secure.yml (interpolated by compose)
        "LINEGUARD_SECRETS_DIR",  # docker-compose.secure.yml (interpolated by compose)
        "LINEGUARD_CONSOLE_SCREENSHOTS",  # tests/integration/test_console_browser.py
    )
)

KNOWN: frozenset[str] = SETTINGS_AND_OPTIONS | READ_DIRECTLY


def unknown_variables(
    environ: Mapping[str, str], known: Iterable[str] = KNOWN
) -> list[tuple[str, str | None]]:
    """``(name, closest known name or None)`` for every ``LINEGUARD_*`` variable not in ``known``, sorted."""
    names = sorted(set(known))
    unknown = sorted(
        name for name in environ if name.upper().startswith(PREFIX) and name.upper() not in names
    )
    return [
        (name, next(iter(difflib.get_close_matches(name.upper(), names, n=1, cutoff=0.75)), None))
        for name in unknown
    ]


def command_envvars(command: Command) -> set[str]:
    """The environment variables of ``command``'s options and of every subcommand below it."""
    found: set[str] = set()
    for param in getattr(command, "params", ()):
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            found.add(envvar)
        elif envvar:
            found.update(envvar)
    for sub in getattr(command, "commands", {}).values():
        found |= command_envvars(sub)
    return found


def asks_for_help(args: list[str], help_names: Iterable[str]) -> bool:
    """Whether the command line asks for help (before a ``--``), where no warning is wanted."""
    before = args[: args.index("--")] if "--" in args else args
    return any(arg in set(help_names) for arg in before)


def warn_unknown_environment(ctx: Context, environ: Mapping[str, str]) -> int:
    """From the root command's callback: one warning line per unknown ``LINEGUARD_*`` variable, unless the
    command line asks for help; returns how many were warned about."""
    args: list[str] = list(ctx.meta.get(ARGS_KEY, ()))
    if not args or asks_for_help(args, ctx.help_option_names):
        return 0
    known = set(KNOWN)
    name = ctx.invoked_subcommand
    root = ctx.command
    command = root.get_command(ctx, name) if name and isinstance(root, TyperGroup) else None
    if command is not None:
        if getattr(command, "commands", None) and len(args) == 1:  # a bare group prints its help
            return 0
        known |= command_envvars(command)
    unknown = unknown_variables(environ, known)
    for variable, suggestion in unknown:
        hint = f" (did you mean {suggestion}?)" if suggestion else ""
        log.warning("%s is set but no lineguard setting reads it%s", variable, hint)
    return len(unknown)
