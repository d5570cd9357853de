"""Findings as a GeoJSON FeatureCollection: one Feature per finding, ready for a map.

Each Feature's geometry is the finding's evidence hull; its properties are the finding's
JSON with the evidence minus the geometry (which would otherwise appear twice).
"""

from __future__ import annotations

import json
from typing import Any

from cbmnet.verification.reconcile import ReconcileReport


def feature_collection(report: ReconcileReport) -> dict[str, Any]:
    features = []
    for f in report.to_json()["findings"]:
        evidence = dict(f.get("evidence") or {})
        geometry = evidence.pop("geometry", None)
        props = {**f, "evidence": evidence}
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return {
        "type": "FeatureCollection",
        "features": features,
        "agreement": report.agreement,
        "as_of": report.to_json()["as_of"],
    }


def dumps(report: ReconcileReport) -> str:
    return json.dumps(feature_collection(report), indent=1, ensure_ascii=False) + "\n"
