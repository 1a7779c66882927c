"""A TCP proxy in front of the loopback S3 server that counts the bytes it serves (stdlib only).

    proxy = CountingProxy(server.port).start()      # rclone.conf endpoint = proxy.endpoint
    proxy.rate = 2e6                                  # responses capped at 2 MB/s (all connections)
    proxy.delay = 0.02                                # every request held 20 ms
    proxy.reset(); ...; proxy.served                  # bytes sent to clients since reset()
    proxy.copies                                      # server-side copies asked for since reset()
    proxy.peak_open                                   # most client connections open at once
    proxy.stop()

`served` counts what the S3 server sent back (HTTP headers, listings and object bodies): the
figure a test compares with the dataset's size ("the node fetched the dataset about once").
The proxy runs an asyncio loop in a daemon thread of the test process; the counters are only
written by that loop. `rate` makes a copy slow enough to be interrupted mid-way (its idea comes
from the latency proxy of bench/stage_bench.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Optional

CHUNK = 1 << 16
COPY_HEADER = b"\nx-amz-copy-source:"  # how a request asks the server to copy an object


class CountingProxy:
    def __init__(self, target_port: int, delay: float = 0.0, rate: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay  # seconds each client->server chunk (a request) is held
        self.rate = rate  # bytes/s cap on server->client, shared by every connection (0: none)
        self.served = 0  # server -> client bytes since reset()
        self.received = 0  # client -> server bytes since reset()
        self.connections = 0
        self.open = 0  # client connections open now
        self.peak_open = 0  # the most open at once since reset(): how many requests overlapped
        self.copies = 0  # requests with an x-amz-copy-source header (CopyObject, UploadPartCopy)
        self._next_free = 0.0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._thread: Optional[threading.Thread] = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.served = self.received = self.connections = self.copies = 0
        self.peak_open = self.open

    def start(self) -> CountingProxy:
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._handle, "127.0.0.1", self.port, backlog=1024))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failed.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            # the connections a client still holds end here, not in a closed loop
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:  # (gather() of nothing would look for this thread's current loop)
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="s3proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failed or not ready.is_set():
            raise RuntimeError(f"proxy did not start: {failed[0] if failed else 'timeout'}")
        return self

    def stop(self) -> None:
        if self._loop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            try:
                s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                c_writer.close()
                return
            for w in (c_writer, s_writer):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.gather(self._pipe(c_reader, s_writer, upstream=True),
                                 self._pipe(s_reader, c_writer, upstream=False),
                                 return_exceptions=True)
        finally:
            self.open -= 1

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    upstream: bool) -> None:
        loop = asyncio.get_running_loop()
        tail = b""  # the end of the last chunk, for a header split between two reads
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if upstream:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.received += len(data)
                    seen = (tail + data).lower()
                    self.copies += seen.count(COPY_HEADER) - tail.lower().count(COPY_HEADER)
                    tail = data[-len(COPY_HEADER):]
                else:
                    if self.rate:
                        now = loop.time()
                        start = max(now, self._next_free)
                        self._next_free = start + len(data) / self.rate
                        await asyncio.sleep(self._next_free - now)
                    self.served += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
