"""Verification: sensor observations reconciled against what the parties declared.

``observations`` reads and validates detections into numpy chunks; ``reconcile`` (pure)
matches them to declared activities, clusters the rest and reports discrepancies with
their evidence; ``geojson`` turns findings into a map layer. See docs/verification.md.
"""
