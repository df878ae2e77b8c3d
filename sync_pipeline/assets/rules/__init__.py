"""The rule engine (group ``rules``): eligibility, matching, numbering, merge, plan."""
