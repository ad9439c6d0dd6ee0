"""The yardstick of ``bench.idle_cpu``: an asyncio loop with nothing to do but one timer
every INTERVAL seconds, the lag timer every service's loop runs (``POLYLOOP_LAG_INTERVAL``).
Its CPU is what the machine charges for waking a loop that often, before any work.

run: python bench/servers/bare_timer.py 0.05 [LIFETIME]   (ends by itself after LIFETIME s)
"""

import asyncio
import sys


async def main(interval: float, lifetime: float) -> None:
    loop = asyncio.get_running_loop()

    def tick() -> None:
        loop.call_later(interval, tick)

    tick()
    await asyncio.sleep(lifetime)


if __name__ == "__main__":
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 0.05
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 300.0
    asyncio.run(main(interval, lifetime))
