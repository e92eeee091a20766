"""The counters in Redis: one Lua script per batch, so counts, seen ids and offsets change together.

Keys (``<p>`` the prefix, ``<w>`` the window length in seconds)::

    <p>:<w>:<line>:<start>:counts   hash  frames, ok, defect, uncertain, deadline_missed, class:<name>
    <p>:<w>:<line>:<start>:seen     set   the results already counted in that window, each as a 63-bit
                                          digest of its result id: an integer set ("intset", 8 bytes a
                                          member up to ``set-max-intset-entries``, which the stack's
                                          server raises to 16384) instead of ~90 bytes for the id string.
                                          Exact for practical purposes (a collision among 10^4 ids of one
                                          window: ~3e-12), unlike a HyperLogLog (0.8 % error).
    <p>:<w>:windows:<line>          zset  window starts of the line (score = start), trimmed to the retention
    <p>:lines                       set   line ids
    <p>:offsets:<stream>            hash  partition -> next offset, raised only (max)

Window keys expire after the retention. The script builds key names itself, which standalone Redis allows
and Redis Cluster does not (a cluster would need one hash tag per line and one script call per line).
A script runs atomically and is written to the AOF as one MULTI/EXEC, so a crash keeps all of a batch or
none of it, offsets included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import redis

from quality.counters.tally import Tally, WindowCounts
from schemas.errors import ConfigurationError

_APPLY = """
local prefix, w, ttl, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local okey, m = ARGV[5], tonumber(ARGV[6])
local counted, touched, i = 0, {}, 7
for _ = 1, n do
  local line, start, id, fields = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local base = prefix .. ':' .. w .. ':' .. line .. ':' .. start
  if redis.call('SADD', base .. ':seen', id) == 1 then
    counted = counted + 1
    for field in string.gmatch(fields, '[^\\t]+') do
      redis.call('HINCRBY', base .. ':counts', field, 1)
    end
  end
  if not touched[base] then
    touched[base] = true
    local windows = prefix .. ':' .. w .. ':windows:' .. line
    redis.call('ZADD', windows, start, start)
    redis.call('ZREMRANGEBYSCORE', windows, '-inf', '(' .. (tonumber(start) - ttl))
    redis.call('SADD', prefix .. ':lines', line)
    redis.call('EXPIRE', base .. ':seen', ttl)
    redis.call('EXPIRE', base .. ':counts', ttl)
  end
end
for _ = 1, m do
  local partition, offset = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local current = tonumber(redis.call('HGET', okey, partition) or '-1')
  if offset > current then redis.call('HSET', okey, partition, offset) end
end
return counted
"""

DEFAULT_PREFIX = "lineguard:live"
DEFAULT_RETENTION_S = 2 * 24 * 3600


def member(result_id: str) -> int:
    """The set member of a result id: a non-negative 63-bit digest (Redis keeps small integer sets packed)."""
    return int.from_bytes(hashlib.blake2b(result_id.encode(), digest_size=8).digest(), "big") >> 1


def connect(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """A client that answered PING; a wrong URL, refused login or unreachable server is ConfigurationError
    (one line, exit 2). The message never holds the URL, which may carry a password."""
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        client.ping()
    except ValueError as exc:  # from_url: not a redis:// URL
        raise ConfigurationError(f"REDIS_URL is not a Redis URL ({exc})") from None
    except redis.AuthenticationError as exc:
        raise ConfigurationError(f"Redis refused the login ({exc}): check REDIS_URL") from None
    except redis.ConnectionError as exc:
        raise ConfigurationError(f"cannot reach Redis ({exc}): is REDIS_URL right?") from None
    except redis.ResponseError as exc:  # NOAUTH and the like
        raise ConfigurationError(f"Redis refused the connection ({exc}): check REDIS_URL") from None
    return client


def fsync_policy(client: redis.Redis) -> str:
    """``always`` when each write is on disk before Redis answers; managed servers may hide CONFIG."""
    try:
        config = {str(k): str(v) for k, v in client.config_get("append*").items()}
    except redis.ResponseError:
        return "unknown"
    if config.get("appendonly") == "no":
        return "no-aof"
    return str(config.get("appendfsync", "unknown"))


class RedisStore:
    def __init__(
        self,
        client: redis.Redis,  # made by `connect` (decode_responses: replies are str)
        window_s: int,
        prefix: str = DEFAULT_PREFIX,
        retention_s: int = DEFAULT_RETENTION_S,
    ) -> None:
        self.client = client
        self.window_s = window_s
        self.prefix = prefix
        self.retention_s = retention_s
        self._apply = client.register_script(_APPLY)

    def _offsets_key(self, stream: str) -> str:
        return f"{self.prefix}:offsets:{stream}"

    def apply(self, tallies: Sequence[Tally], offsets: Mapping[int, int], stream: str) -> int:
        head = (self.prefix, self.window_s, self.retention_s, len(tallies))
        args: list[str | int] = [*head, self._offsets_key(stream), len(offsets)]
        for item in tallies:
            args += [item.line_id, item.window_start, member(item.result_id), "\t".join(item.fields)]
        for partition, offset in offsets.items():
            args += [partition, offset]
        return int(self._apply(keys=[], args=args))

    def offsets(self, stream: str, partitions: Iterable[int]) -> dict[int, int]:
        wanted = list(partitions)
        if not wanted:
            return {}
        values = self.client.hmget(self._offsets_key(stream), [str(p) for p in wanted])
        return {p: int(v) for p, v in zip(wanted, values, strict=True) if v is not None}

    def lines(self) -> list[str]:
        return sorted(str(m) for m in self.client.smembers(f"{self.prefix}:lines"))

    def recent(self, line_id: str, windows: int) -> list[WindowCounts]:
        base = f"{self.prefix}:{self.window_s}"
        members = self.client.zrevrange(f"{base}:windows:{line_id}", 0, windows - 1)
        starts = [int(str(member)) for member in members]
        pipe = self.client.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(f"{base}:{line_id}:{start}:counts")
        found: list[WindowCounts] = []
        for start, raw in zip(starts, pipe.execute(), strict=True):
            if raw:  # expired in between: not a window of zeros
                counts = {str(k): int(v) for k, v in raw.items()}
                found.append(WindowCounts(line_id, start, self.window_s, counts))
        return found
