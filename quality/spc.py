"""SPC: a p-chart of the defective share per subgroup, with the Western Electric rules.

Subgroups have different sizes (frames per hour vary), so each has its own limits,
``p̄ ± 3·sqrt(p̄(1-p̄)/n_i)``, and the rules are read on the standardized value ``z_i = (p_i - p̄)/σ_i``:

1. one point beyond 3σ;
2. two of three consecutive points beyond 2σ on the same side;
3. four of five consecutive points beyond 1σ on the same side;
4. eight consecutive points on the same side of the centre line.

A rule is flagged on the point that completes it. p̄ comes from the whole range unless a baseline is given
(``p_bar``: e.g. the rate of a reference period), which is how a shifted process is judged against the
in-control one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RULES = {
    1: "1 point beyond 3 sigma",
    2: "2 of 3 beyond 2 sigma, same side",
    3: "4 of 5 beyond 1 sigma, same side",
    4: "8 in a row on one side",
}


def p_chart(
    subgroups: pd.DataFrame, p_bar: float | None = None, min_subgroup: int = 1
) -> tuple[pd.DataFrame, float]:
    """``subgroups`` has columns period, n, defective; returns the chart table and the centre line.

    The table adds p, lcl, ucl, z and ``rules`` (comma-separated rule numbers flagged on the point)."""
    table = subgroups[subgroups["n"] >= min_subgroup].reset_index(drop=True).copy()
    if not len(table):
        return table.assign(p=[], lcl=[], ucl=[], z=[], rules=[]), 0.0
    n = table["n"].to_numpy(dtype=float)
    d = table["defective"].to_numpy(dtype=float)
    centre = float(d.sum() / n.sum()) if p_bar is None else float(p_bar)
    sigma = np.sqrt(centre * (1.0 - centre) / n)
    p = d / n
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sigma > 0, (p - centre) / np.where(sigma > 0, sigma, 1.0), 0.0)
    table["p"] = p
    table["lcl"] = np.maximum(0.0, centre - 3 * sigma)
    table["ucl"] = np.minimum(1.0, centre + 3 * sigma)
    table["z"] = z
    table["rules"] = [",".join(str(rule) for rule in point) for point in western_electric(z)]
    return table, centre


ON_THE_LINE = 1e-9  # |z| below this is on the centre line (floating-point noise), on neither side


def western_electric(z: np.ndarray) -> list[list[int]]:
    """The rules each point completes (see the module docstring)."""
    flagged: list[list[int]] = [[] for _ in range(len(z))]
    z = np.where(np.abs(z) < ON_THE_LINE, 0.0, z)
    for i in range(len(z)):
        if abs(z[i]) > 3:
            flagged[i].append(1)
        for rule, window, need, limit in ((2, 3, 2, 2.0), (3, 5, 4, 1.0)):
            if i + 1 >= window:
                recent = z[i + 1 - window : i + 1]
                for sign in (1.0, -1.0):
                    if sign * z[i] > limit and int(np.sum(sign * recent > limit)) >= need:
                        flagged[i].append(rule)
                        break
        if i + 1 >= 8:
            recent = z[i - 7 : i + 1]
            if bool(np.all(recent > 0)) or bool(np.all(recent < 0)):
                flagged[i].append(4)
    return flagged


def binomial_z(defective: float, n: float, expected: float) -> float:
    """How many standard errors an observed rate is from an expected one (0 when undefined)."""
    if n <= 0 or not 0.0 < expected < 1.0:
        return 0.0
    return (defective / n - expected) / math.sqrt(expected * (1 - expected) / n)
