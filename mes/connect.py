"""Connecting to PostgreSQL: the shared helpers of :mod:`infra.postgres_access`, under the names the sink and
its callers import (``mes.connect.connect``, ``mes.connect.refused``)."""

from __future__ import annotations

from infra.postgres_access import connect as connect
from infra.postgres_access import refused as refused
