"""The asset keys more than one module names, each defined once.

``sync/plan`` is the contract between the rule engine and the apply step: the rules write
it (with their review decision, G9), apply reads it; neither imports the other for it.
"""

import dagster as dg

PLAN_KEY = dg.AssetKey(["sync", "plan"])
FINDINGS_KEY = dg.AssetKey(["sync", "findings"])
CONFLICTS_KEY = dg.AssetKey(["sync", "conflicts"])
LINKS_KEY = dg.AssetKey(["sync", "links"])
ERRORS_KEY = dg.AssetKey(["sync", "errors"])
