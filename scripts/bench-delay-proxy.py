#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that delays everything it forwards by a fixed time each way: a long link on loopback,
for scripts/bench's S8 (the same mailbox as S3, as if the POP3 server were across a network).

  bench-delay-proxy.py PORTFILE TARGET_PORT DELAY_MS

Listens on a free port (written to PORTFILE once listening) and forwards each connection to 127.0.0.1:TARGET_PORT.
Each chunk read is written out DELAY_MS later, in order, so a round trip costs 2 x DELAY_MS and bandwidth is not
limited. Runs until killed.
"""
import asyncio
import os
import sys
import time

portfile, target_port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000


async def forward(reader, writer):
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(read(), write())


async def connection(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(forward(client_reader, server_writer), forward(server_reader, client_writer))
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        client_writer.close()
        server_writer.close()


async def main():
    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    async with server:
        await server.serve_forever()


asyncio.run(main())
