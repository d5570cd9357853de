"""Scenario simulator: exercise traffic played through a hub's real API.

A scenario is a seeded plan (:mod:`cbmnet.sim.scenarios`) of what each party does and
which findings that should produce; the player (:mod:`cbmnet.sim.player`) signs every act
with the acting party's own key and sends it with :class:`cbmnet.party.client.HubClient`, so the
hub, the compliance engine and the witnesses see nothing a real deployment would not.
Every record is marked as exercise data, as real exercise traffic is.
"""

from cbmnet.sim.player import Summary, play
from cbmnet.sim.scenarios import SCENARIOS, Plan, Step, build

__all__ = ["SCENARIOS", "Plan", "Step", "Summary", "build", "play"]
