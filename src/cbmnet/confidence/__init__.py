"""Confidence indicators: timeliness, completeness, responsiveness, compliance, reciprocity.

Pure: built from the compliance engine's report and facts read from the log, so any
party can recompute them. Formulas and a worked example: docs/indicators.md.
"""

from cbmnet.confidence.indicators import indicators, month_of
from cbmnet.confidence.record import Fact, Record, facts_from_state, record_from_state

__all__ = ["Fact", "Record", "facts_from_state", "indicators", "month_of", "record_from_state"]
