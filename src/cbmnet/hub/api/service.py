"""The service itself: is it up, and who it is (the keys a client pins)."""

from typing import Any

from fastapi import APIRouter

from cbmnet.hub.deps import HubDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz(hub: HubDep) -> dict[str, Any]:
    return {"status": "ok", "log_size": hub.sync()}


@router.get("/v1/hub")
def hub_info(hub: HubDep) -> dict[str, Any]:
    """Who this hub is: the keys a client must pin before trusting anything else."""
    return {
        "origin": hub.log.origin,
        "log_vkey": hub.log.vkey,
        "hub_vkey": hub.hub_vkey,
        "secretariat_vkey": hub.secretariat_vkey,
        "agreements": sorted(hub.agreements),
        # Approvals that recover a party's identity, per agreement that sets more than
        # a majority: every party's audit re-checks quorum rotations with these.
        "key_recovery_quorums": {
            aid: ag.key_recovery_quorum
            for aid, ag in sorted(hub.agreements.items())
            if ag.key_recovery_quorum
        },
    }
