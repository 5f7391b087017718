"""The instrument listener process: one asyncio TCP server per configured instrument port.

This is the process shell: it runs, reconciles the set of servers with the instrument
registry every few seconds (so a new instrument needs no restart) and stops cleanly on
SIGTERM/SIGINT. The HL7/MLLP and ASTM protocol handlers and the instrument registry are
added with the laboratory-floor work; until then the registry is empty.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from flask import Flask

log = logging.getLogger("lis.listeners")

RECONCILE_SECONDS = 5.0


class ListenerSet:
    def __init__(self, desired: Callable[[], dict[int, Callable]]):
        self.desired = desired  # port -> connection handler factory
        self.servers: dict[int, asyncio.base_events.Server] = {}

    async def reconcile(self) -> None:
        wanted = self.desired()
        for port in set(self.servers) - set(wanted):
            server = self.servers.pop(port)
            server.close()
            await server.wait_closed()
            log.info("listener stopped", extra={"endpoint": f"port:{port}"})
        for port in set(wanted) - set(self.servers):
            try:
                self.servers[port] = await asyncio.start_server(wanted[port](), host="0.0.0.0", port=port)
                log.info("listener started", extra={"endpoint": f"port:{port}"})
            except OSError:
                log.exception("cannot bind instrument port %s", port)

    async def close(self) -> None:
        for server in self.servers.values():
            server.close()
        await asyncio.gather(*(s.wait_closed() for s in self.servers.values()))
        self.servers.clear()


def configured_listeners(app: Flask) -> Callable[[], dict[int, Callable]]:
    def desired() -> dict[int, Callable]:
        return {}  # the instrument registry (issue 4) fills this

    return desired


async def serve(app: Flask, stop: asyncio.Event) -> None:
    listeners = ListenerSet(configured_listeners(app))
    log.info("instrument listener process started")
    while not stop.is_set():
        await listeners.reconcile()
        try:
            await asyncio.wait_for(stop.wait(), timeout=RECONCILE_SECONDS)
        except asyncio.TimeoutError:
            pass
    await listeners.close()
    log.info("instrument listener process stopped")


def main(app: Flask) -> None:
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, stop)

    asyncio.run(run())
