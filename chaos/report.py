"""The fault run's report: the audit figures, the faults as observed, recovery, and the verdict (``passed``
and, in words, every goal missed: ``failures``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chaos.audit import AuditFigures, percentile
from chaos.faults import FaultPlan


@dataclass(slots=True)
class HarnessReport:
    mode: str
    figures: AuditFigures
    worker_kills: int  # observed: the process was gone
    broker_restarts: int  # observed dead (process and port) and started again
    mongo_outages: int  # observed dead (process and ping) and started again
    mongo_outage_s: float
    producer_restarts: int
    worker_unplanned_exits: int
    recovery_s: dict[str, list[float]]
    recovery_after_repair_s: dict[str, list[float]]
    unrecovered_faults: int
    unobserved_faults: int
    producer: dict[str, int]
    bad_inputs_injected: int
    seconds: float
    plan: FaultPlan

    @property
    def recovery_s_p99(self) -> float | None:
        return percentile([v for values in self.recovery_s.values() for v in values], 0.99)

    @property
    def slowest_recovery_after_repair_s(self) -> float | None:
        return max((v for values in self.recovery_after_repair_s.values() for v in values), default=None)

    @property
    def failures(self) -> list[str]:
        """Every goal missed, in words (empty = passed)."""
        f, plan = self.figures, self.plan
        exactly_once = self.mode == "exactly-once"
        slowest = self.slowest_recovery_after_repair_s
        checks = [
            (f.lost == 0, f"{f.lost} frames lost"),
            (f.duplicate_documents == 0, f"{f.duplicate_documents} duplicate documents"),
            (f.duplicate_results == 0 or not exactly_once, f"{f.duplicate_results} duplicate results"),
            (f.duplicate_dead_letters == 0 or not exactly_once, f"{f.duplicate_dead_letters} duplicate DLs"),
            (f.unexpected_results == 0, f"{f.unexpected_results} unexpected results"),
            (f.spurious_dead_letters == 0, f"{f.spurious_dead_letters} spurious dead letters"),
            (f.missing_dead_letters == 0, f"{f.missing_dead_letters} missing dead letters"),
            (self.worker_unplanned_exits == 0, f"{self.worker_unplanned_exits} unplanned worker exits"),
            (self.worker_kills == plan.worker_kills, f"{self.worker_kills}/{plan.worker_kills} worker kills"),
            (
                self.broker_restarts == plan.broker_restarts,
                f"{self.broker_restarts}/{plan.broker_restarts} broker deaths confirmed",
            ),
            (
                self.mongo_outages == plan.mongo_outages,
                f"{self.mongo_outages}/{plan.mongo_outages} MongoDB deaths confirmed",
            ),
            (
                self.producer_restarts == plan.producer_restarts,
                f"{self.producer_restarts}/{plan.producer_restarts} producer restarts",
            ),
            (self.unobserved_faults == 0, f"{self.unobserved_faults} faults not observed"),
            (self.unrecovered_faults == 0, f"{self.unrecovered_faults} faults not recovered"),
            (
                slowest is None or slowest <= plan.recovery_bound_s,
                f"a recovery took {slowest} s after repair (bound {plan.recovery_bound_s} s)",
            ),
        ]
        return [message for ok, message in checks if not ok]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        def p(values: list[float], fraction: float) -> float | None:
            value = percentile(values, fraction)
            return None if value is None else round(value, 2)

        every = [v for values in self.recovery_s.values() for v in values]
        after_repair = [v for values in self.recovery_after_repair_s.values() for v in values]
        figures = asdict(self.figures)
        return {
            "mode": self.mode,
            "frames": figures.pop("frames"),
            "lost": figures.pop("lost"),
            "duplicate_documents": figures.pop("duplicate_documents"),
            "duplicate_results": figures.pop("duplicate_results"),
            "worker_kills": self.worker_kills,
            "broker_restarts": self.broker_restarts,
            "mongo_outages": self.mongo_outages,
            "mongo_outage_s": round(self.mongo_outage_s, 1),
            "recovery_s_p99": p(every, 0.99),
            "recovery_s_p50": p(every, 0.5),
            "recovery_after_repair_s_p99": p(after_repair, 0.99),
            "recovery_s_max_by_fault": {kind: p(values, 1.0) for kind, values in self.recovery_s.items()},
            "recovery_bound_s": self.plan.recovery_bound_s,
            "unrecovered_faults": self.unrecovered_faults,
            "unobserved_faults": self.unobserved_faults,
            "producer_restarts": self.producer_restarts,
            "worker_unplanned_exits": self.worker_unplanned_exits,
            **figures,
            "bad_inputs_injected": self.bad_inputs_injected,
            "producer": self.producer,
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
            "failures": self.failures,
        }
