"""SSE fan-out: taskcast's server against the minimal sse-starlette baseline, side by side.

Both servers run as child processes (uvicorn, 1 worker, asyncio loop, h11, access log off); the
clients run in this process as minimal asyncio.Protocol SSE readers (HTTP/1.1, chunked decoding,
json.loads of the data line), the same reader for both servers. httpx-sse would cost ~100 us of
client CPU per event and measure itself.

* baseline: the app of ../shared/bench-peers/bench_sse.py, reimplemented identically (an unbounded
  asyncio.Queue per client, EventSourceResponse, a broadcaster putting {"i", "ts"} serialized once
  per event into every queue).
* taskcast: ``serve`` with a memory store and one task that waits for the signal ``go``, then emits
  ``tick`` events {"i", "ts"}; every client watches that run's /runs/{id}/events.

Phases for each C in --clients: "burst" (--events events, sleep(0) between them) and "paced"
(a fixed offered load of --paced-deliveries deliveries/s, i.e. C x rate, for --paced-seconds).
Figures: deliveries/s = received / (last receipt - ts of event 0); p50/p99 latency from emit
(``ts``, CLOCK_MONOTONIC, shared by the processes) to receipt; server CPU seconds per delivery
(utime + stime of the server process from /proc, over the broadcast window); RSS per idle
connection (server VmRSS with C idle streams open minus before, / C, at the largest C).

Run: .venv/bin/python bench/sse.py [--clients 100,1000] [--quick]
Prints one line of JSON, then a markdown table. Every phase is bounded (connect 60 s, run 100 s).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

import httpx

# --------------------------------------------------------------------------- servers


def run_baseline(port: int) -> None:
    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    clients: set = set()
    background: set = set()

    async def sse(request):
        queue: asyncio.Queue = asyncio.Queue()
        clients.add(queue)

        async def generate():
            try:
                yield {"event": "hello", "data": "0"}
                get = queue.get
                while True:
                    item = await get()
                    if item is None:
                        return
                    yield {"data": item}
            finally:
                clients.discard(queue)

        return EventSourceResponse(generate())

    async def broadcaster(n: int, rate: float):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(n):
            data = json.dumps({"i": i, "ts": time.monotonic()})
            for queue in list(clients):
                queue.put_nowait(data)
            if rate > 0:
                delay = t0 + (i + 1) / rate - loop.time()
                await asyncio.sleep(delay if delay > 0 else 0)
            else:
                await asyncio.sleep(0)
        for queue in list(clients):
            queue.put_nowait(None)

    async def broadcast(request):
        n = int(request.query_params.get("n", "1000"))
        rate = float(request.query_params.get("rate", "0"))
        task = asyncio.create_task(broadcaster(n, rate))  # as in the baseline script
        background.add(task)
        task.add_done_callback(background.discard)
        return JSONResponse({"clients": len(clients)}, status_code=202)

    async def stats(request):
        return JSONResponse({"clients": len(clients)})

    app = Starlette(
        routes=[
            Route("/sse", sse),
            Route("/broadcast", broadcast, methods=["POST"]),
            Route("/stats", stats),
        ]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="asyncio",
        http="h11",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=3,
    )


def run_taskcast(port: int) -> None:
    import logging

    import taskcast
    from taskcast.server.serve import listen_tcp, serve
    from taskcast.server.streams import StreamSettings

    logging.basicConfig(level=logging.WARNING)
    app = taskcast.App(store="memory://")

    @app.task(name="bench.broadcast")
    async def broadcast(ctx: taskcast.Context, n: int, rate: float) -> int:
        await ctx.signal("go")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(n):
            await ctx.emit("tick", {"i": i, "ts": time.monotonic()})
            if rate > 0:
                delay = t0 + (i + 1) / rate - loop.time()
                await asyncio.sleep(delay if delay > 0 else 0)
            else:
                await asyncio.sleep(0)
        return n

    settings = StreamSettings(keepalive=60)
    asyncio.run(serve(app, listen_tcp("127.0.0.1", port), stream_settings=settings))


# --------------------------------------------------------------------------- client


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], p: float) -> float:
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


class RawSSE(asyncio.BufferedProtocol):
    """HTTP/1.1 GET (a BufferedProtocol reading into one reused buffer), chunked decoding,
    events split on a blank line as the server writes them, json.loads of the data line of
    ``tick`` (taskcast) or unnamed (baseline) events."""

    def __init__(self, path: str, state: dict, done: asyncio.Future) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        self.state, self.done = state, done
        self.buffer = bytearray()
        self.sse = bytearray()
        self.headers_done = False
        self.chunk_left: int | None = None
        self.latencies: list[float] = []
        self.last = 0.0
        self.next_i = 0
        self.out_of_order = 0
        self.separator: bytes | None = None
        self.view = memoryview(bytearray(65536))

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        # A reused buffer: asyncio's default path allocates 256 KiB per read, which would make
        # the client, not the server, the slow side of the measurement.
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.view[:nbytes].tobytes())

    def eof_received(self) -> bool:
        return False

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.headers_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 200"):
                self.finish(RuntimeError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.headers_done = True
        ended = False
        while True:
            if self.chunk_left is None:
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(buffer[:line_end], 16)
                del buffer[: line_end + 2]
                if size == 0:
                    ended = True
                    break
                self.chunk_left = size
            elif len(buffer) >= self.chunk_left + 2:
                self.sse += buffer[: self.chunk_left]
                del buffer[: self.chunk_left + 2]
                self.chunk_left = None
            else:
                break
        sse = self.sse
        separator = self.separator
        if separator is None:
            if b"\r\n\r\n" in sse:
                separator = self.separator = b"\r\n\r\n"
            elif b"\n\n" in sse:
                separator = self.separator = b"\n\n"
            else:
                separator = b"\n\n"
        step = len(separator)
        while True:
            end = sse.find(separator)
            if end < 0:
                break
            block = bytes(sse[:end])
            del sse[: end + step]
            if block.startswith(b"data: ") or b"event: tick" in block:
                payload = json.loads(block[block.index(b"data: ") + 6 :])
                if payload["i"] != self.next_i:
                    self.out_of_order += 1
                self.next_i = payload["i"] + 1
                self.latencies.append(now - payload["ts"])
                self.last = now
                if payload["i"] == 0 and self.state["ts0"] is None:
                    self.state["ts0"] = payload["ts"]
            elif b"event: hello" in block or b"event: started" in block:
                self.state["ready"] += 1
                if self.state["ready"] == self.state["want"]:
                    self.state["all_ready"].set()
        if ended:
            self.finish(None)

    def finish(self, error: Exception | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish(exc or RuntimeError("closed before the end of the stream"))


async def wait_idle(http: httpx.AsyncClient, kind: str) -> None:
    async with asyncio.timeout(30):
        while True:
            if kind == "baseline":
                busy = (await http.get("/stats")).json()["clients"]
            else:
                busy = (await http.get("/health")).json()["watchers"]
            if busy == 0:
                return
            await asyncio.sleep(0.1)


async def phase(
    kind: str, port: int, pid: int, clients: int, events: int, rate: float, measure_rss: bool
) -> dict:
    loop = asyncio.get_running_loop()
    state = {"ready": 0, "want": clients, "all_ready": asyncio.Event(), "ts0": None}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        await wait_idle(http, kind)
        if kind == "baseline":
            path = "/sse"
        else:
            body = {"task": "bench.broadcast", "args": {"n": events, "rate": rate}}
            run_id = (await http.post("/runs", json=body)).json()["id"]
            path = f"/runs/{run_id}/events"
        rss_before = rss_bytes(pid)
        protocols: list[RawSSE] = []

        async def one() -> None:
            done = loop.create_future()
            transport, protocol = await loop.create_connection(
                lambda: RawSSE(path, state, done), "127.0.0.1", port
            )
            protocols.append(protocol)
            try:
                await done
            finally:
                transport.close()

        async with asyncio.TaskGroup() as tasks:
            readers = [tasks.create_task(one()) for _ in range(clients)]
            began = time.monotonic()
            async with asyncio.timeout(60):
                await state["all_ready"].wait()
            connect_s = time.monotonic() - began
            await asyncio.sleep(0.5)  # let the server settle before reading its RSS
            rss_per_connection = (rss_bytes(pid) - rss_before) / clients if measure_rss else None
            cpu0 = cpu_seconds(pid)
            start = time.monotonic()
            if kind == "baseline":
                await http.post("/broadcast", params={"n": events, "rate": rate})
            else:
                await http.post(f"/runs/{run_id}/signals/go")
            async with asyncio.timeout(100):
                await asyncio.gather(*readers)
            wall = time.monotonic() - start
            cpu = cpu_seconds(pid) - cpu0
    latencies = sorted(x for p in protocols for x in p.latencies)
    in_order = all(len(p.latencies) == events and p.out_of_order == 0 for p in protocols)
    received = len(latencies)
    window = max(p.last for p in protocols) - state["ts0"]
    return {
        "clients": clients,
        "events": events,
        "rate": rate,
        "received": received,
        "lost": clients * events - received,
        "all_delivered_in_order": in_order,
        "connect_s": round(connect_s, 3),
        "deliveries_per_s": round(received / window),
        "p50_ms": round(percentile(latencies, 50) * 1e3, 2),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 2),
        "server_cpu_us_per_delivery": round(cpu / received * 1e6, 2),
        "server_cpu_util": round(cpu / wall, 2),
        "rss_kb_per_idle_connection": (
            round(rss_per_connection / 1024, 1) if rss_per_connection is not None else None
        ),
    }


def start_server(kind: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", kind, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    path = "/stats" if kind == "baseline" else "/health"
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).raise_for_status()
            return process
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the {kind} server did not start") from None
            time.sleep(0.1)


def bench(args: argparse.Namespace) -> dict:
    sizes = [int(c) for c in args.clients.split(",")]
    results: dict = {"python": sys.version.split()[0], "events": args.events, "phases": []}
    for offset, kind in enumerate(("baseline", "taskcast")):
        port = args.port + offset
        server = start_server(kind, port)
        try:
            for clients in sizes:
                rate = args.paced_deliveries / clients
                paced_events = min(args.events, max(1, round(rate * args.paced_seconds)))
                for mode, events, r in (("burst", args.events, 0.0), ("paced", paced_events, rate)):
                    measure_rss = mode == "burst" and clients == max(sizes)
                    figures = asyncio.run(
                        phase(kind, port, server.pid, clients, events, r, measure_rss)
                    )
                    results["phases"].append({"server": kind, "mode": mode, **figures})
                    print(json.dumps(results["phases"][-1]), file=sys.stderr)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return results


def markdown(results: dict) -> str:
    lines = [
        "| server | C | mode | events | deliveries/s | p50 ms | p99 ms "
        "| server CPU us/delivery | KB/idle conn | lost |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in results["phases"]:
        rss = p["rss_kb_per_idle_connection"]
        lines.append(
            f"| {p['server']} | {p['clients']:,} | {p['mode']} | {p['events']:,} "
            f"| {p['deliveries_per_s']:,} | {p['p50_ms']} | {p['p99_ms']} "
            f"| {p['server_cpu_us_per_delivery']} | {'' if rss is None else rss} | {p['lost']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", default="client", choices=["client", "baseline", "taskcast"])
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--clients", default="100,1000")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--paced-deliveries", type=float, default=5000.0)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="paced phases of 5 s instead of 20")
    options = parser.parse_args()
    if options.role == "baseline":
        run_baseline(options.port)
    elif options.role == "taskcast":
        run_taskcast(options.port)
    else:
        if options.quick:
            options.paced_seconds = 5.0
        began = time.perf_counter()
        results = bench(options)
        results["wall_s"] = round(time.perf_counter() - began, 1)
        print(json.dumps(results))
        print(markdown(results))
