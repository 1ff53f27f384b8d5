"""A reconnect storm against `taskcast serve` (SQLite, 2 cores), and a stop in the middle of one.

**Storm.** A server with one *steady* run emitting --rate events/s after a prefilled log, and 10
*ticker* runs (20 events/s) with one watcher each. After a quiet window (the baseline: no storm),
C clients connect at once to the steady run's stream from seq 0 (`Last-Event-ID: 0`), as after a
deploy, and read until they reach the seq its log had when they connected. Figures, per C:

* `emission_ratio`: the steady run's emission rate while the clients catch up, over its rate in
  the quiet window just before (goal >= 0.8: watchers never slow a task);
* `ticker_p99_ms`: delivery latency (emit to receipt, CLOCK_MONOTONIC shared by the processes)
  of the other runs' watchers during the storm, p50 and p99 (goal p99 <= 100 ms), beside the same
  figure in the quiet window;
* `catch_up_s`: time until every client reached the log's end; `peak_rss_mb`: the server's
  VmHWM (a fresh server per C).

**Stop.** A server with --runs running runs whose logs hold 1,000 events each, N streams
replaying them from seq 0, `--grace 1 --shutdown-timeout 1`, SIGTERM once every stream got its
first event: exit code and time (bound: grace + timeout + 1 s) and how many streams ended with a
`shutdown` event and a clean end of body.

The clients are raw asyncio sockets in this process (no SSE library: they would be the slow side).
Everything runs on 127.0.0.1, every phase is bounded in time, every server is killed by pid.

Run: .venv/bin/python bench/reconnect_storm.py [--clients 200,1000] [--stop-streams 1000,5000]
Prints one JSON line per phase, then a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

import taskcast

READY = re.compile(r"taskcast serving on http://127\.0\.0\.1:(\d+)")
TICKERS, TICKER_RATE = 10, 20.0

app = taskcast.App(max_concurrency=1000)
"""The tasks of the bench's servers (`--app reconnect_storm:app`)."""


async def _paced(ctx: taskcast.Context, rate: float, seconds: float, type: str) -> int:
    loop = asyncio.get_running_loop()
    began = loop.time()
    count = 0
    while loop.time() - began < seconds:
        await ctx.emit(type, {"i": count, "ts": time.monotonic()})
        count += 1
        delay = began + count / rate - loop.time()
        await asyncio.sleep(max(delay, 0))
    return count


@app.task(name="storm.steady")
async def steady(ctx: taskcast.Context, prefill: int, rate: float, seconds: float) -> int:
    """`prefill` events as fast as they go, then `rate` ticks per second for `seconds`."""
    text = "x" * 100
    for index in range(prefill):
        await ctx.emit("fill", {"i": index, "text": text})
    await ctx.emit("ready", {})
    return await _paced(ctx, rate, seconds, "tick")


@app.task(name="storm.ticker")
async def ticker(ctx: taskcast.Context, seconds: float) -> int:
    """`TICKER_RATE` ticks per second for `seconds` (another run, watched live)."""
    return await _paced(ctx, TICKER_RATE, seconds, "tick")


@app.task(name="storm.filled")
async def filled(ctx: taskcast.Context, n: int, size: int = 100) -> None:
    """`n` events of about `size` bytes, then running until cancelled (a long log, still live)."""
    text = "x" * size
    for index in range(n):
        await ctx.emit("fill", {"i": index, "text": text})
    await ctx.emit("ready", {})
    await asyncio.Event().wait()


# --------------------------------------------------------------------------- the server


class Server:
    """`taskcast serve` on a fresh SQLite file, killed by pid on exit."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.log_path = directory / "serve.log"
        store = f"sqlite:///{directory / 'storm.db'}"
        command = [
            sys.executable, "-m", "taskcast", "serve", "--port", "0", "--store", store,
            "--app", "reconnect_storm:app", "--log-level", "warning", *args,
        ]  # fmt: skip
        paths = [os.environ.get("PYTHONPATH", ""), str(Path(__file__).parent)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not (found := READY.search(self.log_path.read_text())):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError(self.log_path.read_text())
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{found.group(1)}"
        self.port = int(found.group(1))

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError("no VmHWM")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


async def wait_seq(http: httpx.AsyncClient, run_id: str, seq: int, timeout: float = 60) -> int:
    async with asyncio.timeout(timeout):
        while (last := (await http.get(f"/runs/{run_id}")).json()["last_seq"]) < seq:  # noqa: ASYNC110 (remote)
            await asyncio.sleep(0.05)
    return int(last)


# --------------------------------------------------------------------------- the clients


class Stream(asyncio.BufferedProtocol):
    """One raw SSE connection: remembers the last `id:` seen, parses `tick` events if asked (for
    latency), and whether the body ended with `shutdown` and a clean last chunk."""

    def __init__(self, path: str, *, ticks: bool = False, target: int = 0) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: 0\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.view = memoryview(bytearray(65536))
        self.tail = b""
        self.last_id = 0
        self.target = target
        self.ticks = ticks
        self.latencies: list[tuple[float, float]] = []  # (receipt, latency)
        self.pending = b""
        self.first = asyncio.get_running_loop().create_future()
        self.reached = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.reached_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        now = time.monotonic()
        data = self.tail + self.view[:nbytes].tobytes()
        found = data.rfind(b"\nid: ")
        if found >= 0:
            end = data.find(b"\n", found + 5)
            if end > 0:
                self.last_id = int(data[found + 5 : end])
                if not self.first.done():
                    self.first.set_result(None)
                if self.last_id >= self.target and not self.reached.done():
                    self.reached_at = now
                    self.reached.set_result(None)
        self.tail = data[-512:]
        if self.ticks:
            blocks = (self.pending + self.view[:nbytes].tobytes()).split(b"\n\n")
            self.pending = blocks.pop()
            for block in blocks:
                if b"event: tick" in block:
                    payload = json.loads(block[block.index(b"\ndata: ") + 7 :])
                    self.latencies.append((now, now - payload["ts"]))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for future in (self.first, self.reached):
            if not future.done():
                future.set_exception(RuntimeError(f"closed at id {self.last_id}: {exc}"))

    @property
    def farewell(self) -> bool:
        """The body ended with a `shutdown` event, then the last chunk."""
        return self.tail.endswith(b"\r\n0\r\n\r\n") and b"event: shutdown" in self.tail[-300:]


async def connect(port: int, factory, limit: asyncio.Semaphore) -> Stream:
    loop = asyncio.get_running_loop()
    async with limit:  # a storm, but one the listen backlog takes in
        _, stream = await loop.create_connection(factory, "127.0.0.1", port)
    return stream


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else 0.0


def rate_between(ticks: list[float], start: float, end: float) -> float:
    return sum(1 for ts in ticks if start <= ts <= end) / (end - start)


# --------------------------------------------------------------------------- the storm


async def storm(server: Server, clients: int, options: argparse.Namespace) -> dict:
    limit = asyncio.Semaphore(256)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        quiet, seconds = options.quiet, options.quiet + 60
        body = {"prefill": options.prefill, "rate": options.rate, "seconds": seconds}
        steady_id = (await http.post("/runs", json={"task": "storm.steady", "args": body})).json()[
            "id"
        ]
        tickers = [
            (
                await http.post(
                    "/runs", json={"task": "storm.ticker", "args": {"seconds": seconds}}
                )
            ).json()["id"]
            for _ in range(TICKERS)
        ]
        # The other runs' watchers read in a process of their own: this one is busy reading the
        # storm, and its lag would be measured as the server's.
        parent, child = multiprocessing.Pipe()
        watching = multiprocessing.get_context("spawn").Process(
            target=watch, args=(server.port, tickers, child), daemon=True
        )
        watching.start()
        parent.recv()  # connected
        await wait_seq(http, steady_id, options.prefill + 3)  # queued, started, fill..., ready
        quiet_began = time.monotonic()
        await asyncio.sleep(quiet)  # the baseline: the same server, no storm
        target = (await http.get(f"/runs/{steady_id}")).json()["last_seq"]
        began = time.monotonic()
        path = f"/runs/{steady_id}/events"
        streams = await asyncio.gather(
            *(
                connect(server.port, lambda: Stream(path, target=target), limit)
                for _ in range(clients)
            )
        )
        async with asyncio.timeout(120):
            await asyncio.gather(*(s.reached for s in streams))
        ended = max(s.reached_at for s in streams)
        for stream in streams:
            stream.transport.close()
        await asyncio.sleep(0.5)
        peak = server.peak_rss_mb()
        await http.post(f"/runs/{steady_id}/cancel")
        ticks = await read_ticks(server.port, steady_id)
    parent.send("stop")
    latencies = await asyncio.to_thread(parent.recv)
    watching.join(10)
    during = [lat for at, lat in latencies if began <= at <= ended]
    before = [lat for at, lat in latencies if quiet_began <= at < began]
    quiet_rate = rate_between(ticks, quiet_began, began)
    storm_rate = rate_between(ticks, began, ended)
    return {
        "phase": "storm",
        "clients": clients,
        "log_events": target,
        "quiet_rate_per_s": round(quiet_rate),
        "storm_rate_per_s": round(storm_rate),
        "emission_ratio": round(storm_rate / quiet_rate, 2),
        "ticker_quiet_p99_ms": round(percentile(before, 99) * 1e3, 1),
        "ticker_p50_ms": round(percentile(during, 50) * 1e3, 1),
        "ticker_p99_ms": round(percentile(during, 99) * 1e3, 1),
        "catch_up_s": round(ended - began, 2),
        "peak_rss_mb": peak,
    }


def watch(port: int, runs: list[str], conn: Connection) -> None:
    """In a child process: watch ``runs`` live until told to stop, then send the latencies."""

    async def main() -> list[tuple[float, float]]:
        limit = asyncio.Semaphore(len(runs))
        watchers = [
            await connect(port, lambda r=r: Stream(f"/runs/{r}/events", ticks=True), limit)
            for r in runs
        ]
        conn.send("connected")
        await asyncio.to_thread(conn.recv)
        for watcher in watchers:
            watcher.transport.close()
        return [pair for w in watchers for pair in w.latencies]

    conn.send(asyncio.run(main()))


async def read_ticks(port: int, run_id: str) -> list[float]:
    """The emission times of the run's ticks, read back from its log."""
    stream = await connect(
        port, lambda: Stream(f"/runs/{run_id}/events", ticks=True), asyncio.Semaphore()
    )
    async with asyncio.timeout(60):
        await stream.closed
    return [at - latency for at, latency in stream.latencies]


# --------------------------------------------------------------------------- the stop


async def stop(server: Server, streams: int, options: argparse.Namespace) -> dict:
    limit = asyncio.Semaphore(256)
    args = {"n": 1000, "size": options.event_size}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        runs = [
            (await http.post("/runs", json={"task": "storm.filled", "args": args})).json()["id"]
            for _ in range(options.runs)
        ]
        for run_id in runs:
            await wait_seq(http, run_id, 1003)
    opened = await asyncio.gather(
        *(
            connect(server.port, lambda r=run_id: Stream(f"/runs/{r}/events"), limit)
            for run_id in (runs[i % len(runs)] for i in range(streams))
        )
    )
    async with asyncio.timeout(60):
        await asyncio.gather(*(s.first for s in opened))
    replaying = sum(1 for s in opened if s.last_id < 1003)
    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.process.wait, 60)
    exited = time.monotonic() - began
    async with asyncio.timeout(10):
        await asyncio.gather(*(s.closed for s in opened))
    return {
        "phase": "stop",
        "streams": streams,
        "runs": options.runs,
        "event_bytes": options.event_size,
        "replaying_at_sigterm": replaying,
        "exit_code": code,
        "exit_s": round(exited, 2),
        "bound_s": 1 + 1 + 1,
        "ended_with_shutdown": sum(1 for s in opened if s.farewell),
    }


def server_sockets(port: int, peers: set[int]) -> list[tuple[int, int]]:
    """(bytes queued to send, send buffer size) in the kernel for each of the server's connections
    to the client ports ``peers``, from ``ss -tmn``: memory that the process's RSS does not show."""
    output = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.findall(r":(\d+)\s+skmem:\(r\d+,rb\d+,t\d+,tb(\d+),f\d+,w(\d+)", output)
    return [(int(queued), int(size)) for peer, size, queued in found if int(peer) in peers]


async def stuck(server: Server, clients: int, options: argparse.Namespace) -> dict:
    """Clients that connect to a busy run's stream and never read: when is each one cut?"""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body = {"prefill": 0, "rate": 2000.0, "seconds": 120.0}
        run_id = (await http.post("/runs", json={"task": "storm.steady", "args": body})).json()[
            "id"
        ]
        await wait_seq(http, run_id, 100)
        sockets = []
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            sockets.append(sock)  # and never read from it
        peers = {sock.getsockname()[1] for sock in sockets}
        began = time.monotonic()
        peak_queued, buffers = 0, 0
        async with asyncio.timeout(120):
            while True:
                held = server_sockets(server.port, peers)
                peak_queued = max(peak_queued, sum(queued for queued, _ in held))
                buffers = max([buffers, *(size for queued, size in held if queued)])
                metrics = (await http.get("/metrics")).text
                found = re.search(r"^taskcast_watchers_dropped_total (\S+)", metrics, re.M)
                if found and float(found.group(1)) >= clients:
                    break
                await asyncio.sleep(0.1)
        cut_after = time.monotonic() - began
        await http.post(f"/runs/{run_id}/cancel")
    for sock in sockets:
        sock.close()
    return {
        "phase": "stuck",
        "clients": clients,
        "write_timeout_s": options.write_timeout,
        "all_cut_after_s": round(cut_after, 2),
        "kernel_queued_peak_mb": round(peak_queued / 2**20, 2),
        "send_buffer_kb": round(buffers / 1024),
    }


def main(options: argparse.Namespace) -> list[dict]:
    results = []
    for clients in (int(c) for c in options.clients.split(",") if c):
        with tempfile.TemporaryDirectory() as directory:
            server = Server(Path(directory), "--keepalive", "60")
            try:
                results.append(asyncio.run(storm(server, clients, options)))
            finally:
                server.kill()
        print(json.dumps(results[-1]), flush=True)
    for streams in (int(c) for c in options.stop_streams.split(",") if c):
        with tempfile.TemporaryDirectory() as directory:
            args = ("--grace", "1", "--shutdown-timeout", "1")
            server = Server(Path(directory), *args)
            try:
                results.append(asyncio.run(stop(server, streams, options)))
            finally:
                server.kill()
        print(json.dumps(results[-1]), flush=True)
    if options.stuck:
        with tempfile.TemporaryDirectory() as directory:
            args = ("--write-timeout", str(options.write_timeout), "--keepalive", "60")
            server = Server(Path(directory), *args)
            try:
                results.append(asyncio.run(stuck(server, options.stuck, options)))
            finally:
                server.kill()
        print(json.dumps(results[-1]), flush=True)
    return results


def markdown(results: list[dict]) -> str:
    lines = []
    storms = [r for r in results if r["phase"] == "storm"]
    if storms:
        lines += [
            "| clients | log | emission during storm / quiet | other watchers p50 / p99 (quiet p99)"
            " | all caught up | peak RSS |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['clients']} | {r['log_events']} | {r['storm_rate_per_s']} / "
            f"{r['quiet_rate_per_s']} = **{r['emission_ratio']}** | {r['ticker_p50_ms']} / "
            f"**{r['ticker_p99_ms']} ms** ({r['ticker_quiet_p99_ms']} ms) | {r['catch_up_s']} s |"
            f" {r['peak_rss_mb']} MB |"
            for r in storms
        ]
    stops = [r for r in results if r["phase"] == "stop"]
    if stops:
        lines += [
            "",
            "| streams | replaying at SIGTERM | exit | stop took (bound) | ended with `shutdown` |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['streams']} | {r['replaying_at_sigterm']} | {r['exit_code']} | {r['exit_s']} s"
            f" ({r['bound_s']} s) | {r['ended_with_shutdown']} |"
            for r in stops
        ]
    for r in results:
        if r["phase"] == "stuck":
            lines += [
                "",
                f"{r['clients']} clients that never read, `--write-timeout"
                f" {r['write_timeout_s']:g}`: all cut after **{r['all_cut_after_s']} s**; kernel"
                f" send queues at most {r['kernel_queued_peak_mb']} MB in all (send buffer"
                f" {r['send_buffer_kb']} KB each).",
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="200,1000")
    parser.add_argument("--stop-streams", default="1000,5000")
    parser.add_argument("--prefill", type=int, default=6500)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--quiet", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--event-size", type=int, default=1000, help="bytes of text per event")
    parser.add_argument("--stuck", type=int, default=200, help="clients that never read")
    parser.add_argument("--write-timeout", type=float, default=5.0)
    print(markdown(main(parser.parse_args())))
