"""The rule engine (group ``rules``): eligibility, matching, numbering, merge, plan.

Steps, each a tenant-partitioned asset writing ``rules.*`` tables:
eligibility → pairs (matching G3, creates G4) → numbers (P5, E2) → merge (G2, G3),
deletions (P8, P9, C6, C7, G7), creates (G4, P10, P11, C5, E4), members (P12) →
``sync/plan``, ``sync/findings``, ``sync/conflicts`` for the run.
"""

from sync_pipeline.assets.rules.creates import creates
from sync_pipeline.assets.rules.deletions import deletions
from sync_pipeline.assets.rules.eligibility import eligibility
from sync_pipeline.assets.rules.matching import pairs
from sync_pipeline.assets.rules.members import members
from sync_pipeline.assets.rules.merge import merge
from sync_pipeline.assets.rules.numbering import numbers
from sync_pipeline.assets.rules.plan import sync_plan

RULE_ASSETS = [eligibility, pairs, numbers, merge, deletions, creates, members, sync_plan]

__all__ = ["RULE_ASSETS"]
