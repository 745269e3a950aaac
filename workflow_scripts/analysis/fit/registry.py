"""Every law an experiment may fit, in the order fits.json lists them.

Adding a law is one module (its formula, its fit and a ``Law`` of ``workflow_scripts.analysis.fit.laws``
whose ``fit`` returns its fits.json entry), one line here and one value of the enum of
``analysis.laws`` in config/schema.yaml (a test checks the two lists agree).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from workflow_scripts.analysis.fit import approach1
from workflow_scripts.analysis.fit import critical_batch
from workflow_scripts.analysis.fit import isoflops
from workflow_scripts.analysis.fit import kaplan
from workflow_scripts.analysis.fit import parametric
from workflow_scripts.analysis.fit import power_law
from workflow_scripts.analysis.fit.laws import Law

LAWS: dict[str, Law] = {law.name: law for law in (
    *power_law.REGISTERED,  # L(N), L(D), L(C): Kaplan et al. 2020, Eq. 1.1-1.3, with E
    parametric.REGISTERED,  # L(N,D): Hoffmann et al. 2022, Eq. 2 (approach 3)
    isoflops.REGISTERED,  # isoflop: Hoffmann et al. 2022, §3.2 (approach 2)
    kaplan.REGISTERED_ND,  # kaplan_L(N,D): Kaplan et al. 2020, Eq. 1.5
    kaplan.REGISTERED_NS,  # L(N,S): Kaplan et al. 2020, Eq. 1.6
    approach1.REGISTERED,  # approach1: Hoffmann et al. 2022, §3.1
    critical_batch.REGISTERED_NS_MIN,  # L(N,S_min): Kaplan et al. 2020, Eq. 1.6 with Eq. 5.3-5.4
    critical_batch.REGISTERED_C_MIN,  # L(C_min): Kaplan et al. 2020, Eq. 1.3 with Eq. 5.3, 5.5
)}


def requested(runs: pd.DataFrame, names: Sequence[str] | None, has_curves: bool = False) -> list[Law]:
    """The laws to fit, in registry order: those named, or by default all that apply to the cells."""
    if names is None:
        return [law for law in LAWS.values() if law.applies(runs, has_curves)]
    unknown = sorted(set(names) - set(LAWS))
    if unknown:
        raise ValueError(f"unknown law(s) {', '.join(unknown)}; expected some of {', '.join(LAWS)}")
    return [law for name, law in LAWS.items() if name in names]
