"""OpenTelemetry: a trace per run, a span per attempt and per child, trace context carried from
the submitter (Python API, HTTP traceparent) into the run and across a Redis worker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import taskcast
from taskcast.server.api import create_app

from ..conftest import redis_url_for
from ..redis_server import RedisServer

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def named(spans: InMemorySpanExporter, name: str) -> list[Any]:
    return [span for span in spans.get_finished_spans() if span.name == name]


def traceparent_of(span: Any) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@contextlib.asynccontextmanager
async def serving(app: taskcast.App) -> AsyncIterator[str]:
    """``app``'s HTTP API on a real uvicorn on 127.0.0.1, in this process (to see its spans)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(create_app(app), lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(server.serve(sockets=[sock]))
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
    sock.close()


def make_app(store: str = "memory://", **options: Any) -> taskcast.App:
    app = taskcast.App(store, **options)

    @app.task
    async def greet(name: str) -> str:
        return f"hello {name}"

    @app.task(retries=1, backoff=0)
    async def flaky(ctx: taskcast.Context) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("the first attempt fails")
        return "second time lucky"

    @app.task
    async def wait_for_go(ctx: taskcast.Context) -> Any:
        await ctx.emit("waiting")
        return await ctx.signal("go")

    @app.task
    async def parent(ctx: taskcast.Context) -> str:
        child = await ctx.spawn("greet", name="child")
        return str(await child)

    return app


async def test_a_run_is_a_trace_with_a_submit_span_and_an_attempt_span_under_it(
    spans: InMemorySpanExporter,
) -> None:
    async with make_app() as app:
        run = await app.submit("greet", name="ada")
        await app.wait(run.id, timeout=30)
    (submit,) = named(spans, "submit greet")
    (attempt,) = named(spans, "run greet")
    assert submit.kind is SpanKind.PRODUCER and attempt.kind is SpanKind.CONSUMER
    assert run.traceparent == traceparent_of(submit)
    assert attempt.parent.span_id == submit.context.span_id
    assert attempt.context.trace_id == submit.context.trace_id
    assert attempt.attributes["taskcast.run_id"] == run.id
    assert attempt.attributes["taskcast.outcome"] == "completed"


async def test_a_submit_inside_a_span_continues_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("tests")
    async with make_app() as app:
        with tracer.start_as_current_span("handle request") as caller:
            run = await app.submit("greet", name="ada")
        await app.wait(run.id, timeout=30)
    (submit,) = named(spans, "submit greet")
    assert submit.parent.span_id == caller.get_span_context().span_id
    (attempt,) = named(spans, "run greet")
    assert attempt.context.trace_id == caller.get_span_context().trace_id


async def test_a_traceparent_given_to_submit_is_the_parent(spans: InMemorySpanExporter) -> None:
    async with make_app() as app:
        run = await app.submit_with("greet", {"name": "ada"}, traceparent=TRACEPARENT)
        await app.wait(run.id, timeout=30)
    (submit,) = named(spans, "submit greet")
    assert f"{submit.context.trace_id:032x}" == TRACEPARENT.split("-")[1]
    assert f"{submit.parent.span_id:016x}" == TRACEPARENT.split("-")[2]


async def test_each_attempt_is_a_span_and_a_failure_is_recorded_on_its_span(
    spans: InMemorySpanExporter,
) -> None:
    async with make_app() as app:
        run = await app.submit("flaky")
        assert (await app.wait(run.id, timeout=30)).state is taskcast.RunState.COMPLETED
    first, second = sorted(
        named(spans, "run flaky"), key=lambda s: s.attributes["taskcast.attempt"]
    )
    assert first.status.status_code is StatusCode.ERROR
    assert [event.name for event in first.events] == ["exception"]
    assert first.events[0].attributes["exception.type"] == "ConnectionError"
    assert second.attributes["taskcast.outcome"] == "completed"
    assert first.context.trace_id == second.context.trace_id  # one trace per run


async def test_a_cancel_is_recorded_on_the_attempt_span(spans: InMemorySpanExporter) -> None:
    async with make_app() as app:
        run = await app.submit("wait_for_go")
        async with contextlib.aclosing(app.events(run.id)) as events:
            async for event in events:
                if event.type == "waiting":
                    break
        await app.cancel(run.id)
        await app.wait(run.id, timeout=30)
    (attempt,) = named(spans, "run wait_for_go")
    assert [event.name for event in attempt.events] == ["cancelled"]
    assert attempt.attributes["taskcast.outcome"] == "cancelled"
    assert attempt.status.status_code is StatusCode.ERROR


async def test_a_child_runs_in_its_parents_trace_under_its_parents_attempt(
    spans: InMemorySpanExporter,
) -> None:
    async with make_app() as app:
        run = await app.submit("parent")
        assert (await app.wait(run.id, timeout=30)).result == "hello child"
    (parent_attempt,) = named(spans, "run parent")
    (child_submit,) = named(spans, "submit greet")
    (child_attempt,) = named(spans, "run greet")
    assert child_submit.parent.span_id == parent_attempt.context.span_id
    assert child_attempt.parent.span_id == child_submit.context.span_id
    assert {parent_attempt.context.trace_id, child_attempt.context.trace_id} == {
        parent_attempt.context.trace_id
    }
    assert child_attempt.attributes["taskcast.parent_id"] == run.id


async def test_the_traceparent_header_of_a_submit_is_its_parent(
    spans: InMemorySpanExporter,
) -> None:
    async with make_app() as app:
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            answer = await client.post(
                "/runs",
                json={"task": "greet", "args": {"name": "ada"}},
                headers={"traceparent": TRACEPARENT},
            )
        await app.wait(answer.json()["id"], timeout=30)
    (submit,) = named(spans, "submit greet")
    assert f"{submit.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
    assert answer.json()["traceparent"] == traceparent_of(submit)


@pytest.mark.parametrize(
    "header",
    [
        "not-a-trace",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has no extras
    ],
)
async def test_a_bad_traceparent_header_is_refused_naming_it_and_nothing_is_stored(
    header: str,
) -> None:
    async with make_app() as app:
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            answer = await client.post(
                "/runs",
                json={"task": "greet", "args": {"name": "x"}},
                headers={"traceparent": header},
            )
        assert answer.status_code == 400
        assert answer.json()["problems"][0]["param"] == "header.traceparent"
        assert await app.runs() == []


async def test_a_bad_traceparent_argument_is_refused_naming_it() -> None:
    async with make_app() as app:
        with pytest.raises(taskcast.InvalidRequest) as refused:
            await app.submit_with("greet", {"name": "x"}, traceparent="00-nope")
        assert refused.value.details["param"] == "traceparent"
        assert await app.runs() == []


async def test_a_redis_worker_continues_the_trace_of_the_api_node_that_submitted(
    spans: InMemorySpanExporter, redis_server: RedisServer
) -> None:
    url = redis_url_for(redis_server, visibility_timeout=3)
    tracer = trace.get_tracer("tests")
    async with make_app(url, worker=False) as api_node, make_app(url) as worker:
        with tracer.start_as_current_span("handle request") as caller:
            run = await api_node.submit("greet", name="ada")
        done = await worker.wait(run.id, timeout=30)
    assert done.result == "hello ada" and done.traceparent == run.traceparent
    (submit,) = named(spans, "submit greet")
    (attempt,) = named(spans, "run greet")
    assert attempt.parent.span_id == submit.context.span_id
    assert attempt.context.trace_id == caller.get_span_context().trace_id


def test_without_opentelemetry_nothing_is_imported_and_the_header_is_kept(tmp_path: Any) -> None:
    import subprocess
    import sys

    script = tmp_path / "no_otel.py"
    script.write_text(
        f"""
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
import taskcast

async def main():
    app = taskcast.App()

    @app.task
    async def greet(name: str) -> str:
        return name

    async with app:
        run = await app.submit_with("greet", {{"name": "x"}}, traceparent={TRACEPARENT!r})
        await app.wait(run.id, timeout=30)
        print((await app.get(run.id)).traceparent)
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry.")))

asyncio.run(main())
"""
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [TRACEPARENT, "[]"]


async def test_a_client_submitting_inside_a_span_sends_its_trace_to_the_server(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("tests")
    async with make_app() as app:
        async with serving(app) as url, taskcast.AsyncClient(url) as client:
            with tracer.start_as_current_span("client job") as caller:
                run = await client.submit_with("greet", {"name": "ada"}, owner="ada@example.org")
        await app.wait(run.id, timeout=30)
    assert run.owner == "ada@example.org"
    (submit,) = named(spans, "submit greet")
    assert submit.parent.span_id == caller.get_span_context().span_id
