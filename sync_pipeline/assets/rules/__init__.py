"""The rule engine (group ``rules``): eligibility, matching, numbering, merge, plan.

Rule assets, each tenant-partitioned and writing ``rules.*`` tables, run in one step
(``rules``, in ``assets.py``):
eligibility → pairs (matching G3, creates G4) → numbers (P5, E2) → merge (G2, G3),
deletions (P8, P9, C6, C7, G7), creates (G4, P10, P11, C5, E4), members (P12) →
``sync/plan``, ``sync/findings``, ``sync/conflicts`` for the run.
"""

from sync_pipeline.assets.rules.assets import rules
from sync_pipeline.assets.rules.plan import sync_plan

RULE_ASSETS = [rules, sync_plan]

__all__ = ["RULE_ASSETS"]
