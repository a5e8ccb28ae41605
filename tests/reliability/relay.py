"""A TCP relay: ``python relay.py PORT TARGET_HOST:TARGET_PORT`` forwards 127.0.0.1:PORT to the target.

The tests put it in front of the S3 server (moto) and ``kill -9`` it to take "the S3 server"
down mid-upload, then start it again on the same port. moto keeps its objects only in memory,
so killing moto itself would also erase every archive; behind the relay they survive, as they
do on a real S3 server that restarts. Prints ``ready`` once it listens.
"""

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def main(port: int, host: str, target_port: int) -> None:
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    target_host, _, target_port = sys.argv[2].rpartition(":")
    asyncio.run(main(int(sys.argv[1]), target_host, int(target_port)))
