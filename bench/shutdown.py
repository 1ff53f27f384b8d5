"""How long `taskcast serve` takes to stop with many SSE streams open, and whether every stream
got its farewell: a `shutdown` event, then a clean end of the chunked body.

Starts `taskcast serve --port 0 --store memory:// --grace G --shutdown-timeout T`, submits
--runs `demo.wait` runs (they never finish by themselves, so they use the whole grace), opens
--streams raw SSE connections spread over them, waits until every stream got `started`, sends
SIGTERM, and measures the time until the process exits.

Run: .venv/bin/python bench/shutdown.py [--streams 1000] [--grace 1] [--shutdown-timeout 1]
Prints one line of JSON.
"""

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

READY = re.compile(r"taskcast serving on http://127\.0\.0\.1:(\d+)")


class Stream(asyncio.Protocol):
    def __init__(self, path: str, started: asyncio.Event, counter: dict) -> None:
        self.path, self.started, self.counter = path, started, counter
        self.data = bytearray()
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.seen_started = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not self.seen_started and b"event: started" in self.data:
            self.seen_started = True
            self.counter["started"] += 1
            if self.counter["started"] == self.counter["want"]:
                self.started.set()
        if self.data.endswith(b"\r\n0\r\n\r\n") and not self.done.done():
            self.done.set_result(True)  # the chunked body ended cleanly

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(False)


def main(options: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        log_path = Path(directory) / "serve.log"
        with open(log_path, "wb") as log:
            command = [
                sys.executable, "-m", "taskcast", "serve", "--port", "0", "--store", "memory://",
                "--grace", str(options.grace), "--shutdown-timeout", str(options.shutdown_timeout),
            ]  # fmt: skip
            server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while not (found := READY.search(log_path.read_text())):
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError(log_path.read_text())
                    time.sleep(0.05)
                try:
                    return asyncio.run(measure(options, server, int(found.group(1))))
                except Exception:
                    print(log_path.read_text()[-3000:], file=sys.stderr)
                    raise
            finally:
                if server.poll() is None:
                    server.kill()
                server.wait()


async def measure(options: argparse.Namespace, server: subprocess.Popen, port: int) -> dict:
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        runs = [
            (await http.post("/runs", json={"task": "demo.wait"})).json()["id"]
            for _ in range(options.runs)
        ]
    started = asyncio.Event()
    counter = {"started": 0, "want": options.streams}
    streams = []
    for index in range(options.streams):
        path = f"/runs/{runs[index % len(runs)]}/events"
        _, stream = await loop.create_connection(
            lambda path=path: Stream(path, started, counter), "127.0.0.1", port
        )
        streams.append(stream)
    async with asyncio.timeout(60):
        await started.wait()
    began = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.wait, 60)
    exited = time.monotonic() - began
    clean = await asyncio.gather(*(s.done for s in streams))
    farewell = sum(1 for s in streams if b"event: shutdown" in s.data)
    for stream in streams:
        stream.transport.close()
    return {
        "streams": options.streams,
        "runs": options.runs,
        "grace_s": options.grace,
        "shutdown_timeout_s": options.shutdown_timeout,
        "exit_code": code,
        "exit_s": round(exited, 2),
        "bound_s": options.grace + options.shutdown_timeout + 1,
        "got_shutdown_event": farewell,
        "ended_cleanly": sum(clean),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--shutdown-timeout", type=float, default=1.0)
    print(json.dumps(main(parser.parse_args())))
