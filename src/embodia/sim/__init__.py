"""Simulated worlds behind one observation/action convention (see docs/architecture.md).

Both worlds are registered with Gymnasium, so `gymnasium.make("embodia/SO101Tabletop-v0")` and
`gymnasium.make("embodia/MetaWorld-v0", task="drawer-open")` work after `import embodia.sim`.
"""

import gymnasium as gym

gym.register(id="embodia/SO101Tabletop-v0", entry_point="embodia.sim.tabletop:TabletopEnv")
gym.register(id="embodia/MetaWorld-v0", entry_point="embodia.sim.metaworld:MetaWorldEnv")
