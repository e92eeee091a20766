"""The PLC bridge's configuration file (YAML or JSON): the OPC UA endpoint, the node of every signal, codes.

```yaml
endpoint: opc.tcp://plc-line-1:4840
nodes:                       # OPC UA node ids of the handshake signals
  decision: "ns=2;s=Gate.Decision"          # Int16: 1 = PASS, 2 = REJECT
  class_code: "ns=2;s=Gate.ClassCode"       # Int16, from class_codes (0 = none)
  error_code: "ns=2;s=Gate.ErrorCode"       # Int16: 0 none, 1 missing views, 2 uncertain, 9 other
  part_id: "ns=2;s=Gate.PartId"             # String
  sequence: "ns=2;s=Gate.Sequence"          # UInt32, +1 per decision
  request: "ns=2;s=Gate.ResultReady"        # Boolean, bridge sets, clears after the ack
  ack_sequence: "ns=2;s=Gate.AckSequence"   # UInt32, the PLC writes the sequence it took over
  ack_part_id: "ns=2;s=Gate.AckPartId"      # String, the PLC writes the part it took over
  heartbeat: "ns=2;s=Gate.Heartbeat"        # UInt32, bridge increments every heartbeat_s
class_codes: {scratch: 1, dent: 2}
ack_timeout_s: 2.0      # an ack slower than this raises the alarm (the bridge keeps waiting: never drops)
heartbeat_s: 1.0
security: {policy: Basic256Sha256, mode: SignAndEncrypt, certificate: c.der, private_key: k.pem}  # optional
recipe: {line: line-1, node: "ns=2;s=Line.RecipeIndex", recipes: {1: A, 2: B}}  # optional
```
(``security``: see :mod:`parts.plc_security`; without it the session is unencrypted. ``recipe``: the node the
PLC writes its recipe index to, see :mod:`parts.plc_recipes`.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from parts.plc_recipes import RecipeNodeConfig, recipe_node_from_dict
from parts.plc_security import PlcSecurity, plc_security_from_dict
from schemas.errors import ConfigurationError
from schemas.parts import PartDecisionReason

NODE_NAMES = (
    "decision",
    "class_code",
    "error_code",
    "part_id",
    "sequence",
    "request",
    "ack_sequence",
    "ack_part_id",
    "heartbeat",
)

ERROR_CODES = {
    PartDecisionReason.ALL_OK: 0,
    PartDecisionReason.DEFECT: 0,
    PartDecisionReason.MISSING_VIEWS: 1,
    PartDecisionReason.UNCERTAIN: 2,
    PartDecisionReason.OTHER: 9,
}
UNKNOWN_CLASS_CODE = 99


@dataclass(frozen=True, slots=True)
class PlcConfig:
    endpoint: str
    nodes: Mapping[str, str]
    class_codes: Mapping[str, int] = field(default_factory=dict)
    ack_timeout_s: float = 2.0
    heartbeat_s: float = 1.0
    connect_timeout_s: float = 5.0
    security: PlcSecurity | None = None
    recipe: RecipeNodeConfig | None = None


def plc_config_from_dict(data: object) -> PlcConfig:
    if not isinstance(data, Mapping):
        raise ConfigurationError("PLC config: expected a mapping")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith("opc.tcp://"):
        raise ConfigurationError(f"PLC config: endpoint must be an opc.tcp:// URL, got {endpoint!r}")
    nodes = data.get("nodes")
    if not isinstance(nodes, Mapping):
        raise ConfigurationError("PLC config: `nodes` must map signal names to OPC UA node ids")
    missing = [name for name in NODE_NAMES if not isinstance(nodes.get(name), str)]
    if missing:
        raise ConfigurationError(f"PLC config: no node id for {', '.join(missing)}")
    unknown = set(nodes) - set(NODE_NAMES)
    if unknown:
        raise ConfigurationError(f"PLC config: unknown signals {', '.join(sorted(unknown))}")
    codes = data.get("class_codes", {})
    if not isinstance(codes, Mapping) or not all(isinstance(v, int) for v in codes.values()):
        raise ConfigurationError("PLC config: class_codes must map labels to integers")
    try:
        ack_timeout_s = float(data.get("ack_timeout_s", 2.0))
        heartbeat_s = float(data.get("heartbeat_s", 1.0))
        connect_timeout_s = float(data.get("connect_timeout_s", 5.0))
    except (TypeError, ValueError):
        raise ConfigurationError("PLC config: ack_timeout_s, heartbeat_s must be numbers") from None
    return PlcConfig(
        endpoint=endpoint,
        nodes={name: nodes[name] for name in NODE_NAMES},
        class_codes={str(k): v for k, v in codes.items()},
        ack_timeout_s=ack_timeout_s,
        heartbeat_s=heartbeat_s,
        connect_timeout_s=connect_timeout_s,
        security=plc_security_from_dict(data.get("security")),
        recipe=recipe_node_from_dict(data.get("recipe")),
    )


def load_plc_config(path: Path) -> PlcConfig:
    return plc_config_from_dict(read_config_data(path))


def read_config_data(path: Path) -> object:
    """The parsed YAML/JSON file; unreadable or malformed is a ConfigurationError (one line, exit 2)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read PLC config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"PLC config {path} is not valid YAML/JSON: {exc}") from None
    return data
