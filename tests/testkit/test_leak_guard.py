"""The leak guard flags each gallery bug at its creation site and passes the fixes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gallery_runner import Snippet

ANYIO_INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
taskcast_leak_guard = true
"""

GALLERY_LEAKS = [
    ("leaked_task", "task 'Task-", "still pending when its event loop closed"),
    ("unawaited_coroutine", "coroutine 'save' was never awaited", ""),
    ("unclosed_async_generator", "async generator 'subscribe'", "without aclose()"),
    ("open_socket", "socket", "is still open at the end of the test"),
    ("unclosed_connection", "- stream: unclosed <StreamWriter", ""),
    ("open_file", "- file: unclosed file", "report.txt"),
    ("sse_reader", "async generator 'EventSource.aiter_sse' was dropped", "without aclose()"),
    ("anyio_task", "running beat() was still pending", ""),
    ("subprocess_left_running", "- subprocess: process", "is still running at the end"),
    ("executor_job_left_running", "- executor job: executor job Queue.get()", "it is now at"),
    ("worker_thread_file", "- file: unclosed file", "report.txt"),
    ("thread_loop_task", "running flush() was still pending", ""),
    ("session_pool", "- socket: <socket.socket", "is still open at the end of the test"),
]

#: Snippets whose bug outlives their session (the server side of a connection nobody
#: closed goes with the session's loop): they run in their own process.
IN_A_PROCESS = {"session_pool"}


@pytest.mark.parametrize(("name", "what", "why"), GALLERY_LEAKS)
def test_gallery_bug_fails_with_its_creation_site_and_the_fix_passes(
    snippet: Callable[[str], Snippet], name: str, what: str, why: str
) -> None:
    example = snippet(name)
    if name.startswith("anyio"):
        example.pytester.makeini(ANYIO_INI)  # anyio's plugin runs the async tests
    run = example.run_in_a_process if name in IN_A_PROCESS else example.run
    result = run("-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*{example.filename}::test_fixed PASSED*",
            "*ERROR at teardown of test_buggy*",
            f"*taskcast leak guard: {example.filename}::test_buggy left 1 leak behind*",
        ]
    )
    output = result.stdout.str()
    assert what in output
    assert why in output
    assert example.site() in output, f"creation site {example.site()} not reported"


def test_allow_leaks_opts_one_test_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        async def forgotten():
            pass

        @pytest.mark.allow_leaks(reason="demonstrates the opt-out")
        def test_leaks_on_purpose():
            forgotten()
        """
    )
    pytester.runpytest("-W", "error::RuntimeWarning").assert_outcomes(passed=1)


def test_allow_leaks_without_a_reason_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.allow_leaks
        def test_no_reason():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*allow_leaks needs a reason*"])


@pytest.mark.allow_leaks(reason="the nested session leaks a task on purpose, unguarded")
@pytest.mark.parametrize(
    "switch", [("--taskcast-no-leak-guard",), ("-o", "taskcast_leak_guard=false")]
)
def test_guard_can_be_turned_off_for_a_run(
    snippet: Callable[[str], Snippet], switch: tuple[str, ...]
) -> None:
    snippet("leaked_task").run(*switch).assert_outcomes(passed=2)


def test_never_awaited_coroutine_in_a_cycle_is_blamed_on_the_test_that_made_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import gc

        async def job():
            pass

        def test_makes_cycle():
            holder = {}
            holder["self"] = holder
            holder["coro"] = job()  # freed only by the cycle collector

        def test_innocent():
            gc.collect()
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_innocent PASSED*", "*ERROR at teardown of test_makes_cycle*"]
    )


def test_resources_of_wider_scoped_fixtures_are_not_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import socket
        import sqlite3
        import threading

        import pytest

        class EchoServer:
            def __init__(self):
                self.sock = socket.create_server(("127.0.0.1", 0))
                self.port = self.sock.getsockname()[1]
                self.clients = []
                self.thread = threading.Thread(target=self.serve, daemon=True)
                self.thread.start()

            def serve(self):
                while True:
                    try:
                        conn, _ = self.sock.accept()
                    except OSError:
                        return
                    self.clients.append(conn)
                    conn.sendall(conn.recv(100))

        @pytest.fixture(scope="session")
        def server():
            server = EchoServer()
            yield server
            server.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            server.sock.close()
            server.thread.join()
            for conn in server.clients:
                conn.close()

        @pytest.fixture(scope="module")
        def pool():
            pool = []  # connections made lazily by tests, closed by the fixture
            yield pool
            for conn in pool:
                conn.close()

        def test_connection_kept_by_a_module_fixture(server, pool):
            conn = socket.create_connection(("127.0.0.1", server.port))
            pool.append(conn)
            conn.sendall(b"hi")
            assert conn.recv(2) == b"hi"

        async def test_async_client_closed(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"ok")
            assert await reader.readexactly(2) == b"ok"
            writer.close()
            await writer.wait_closed()

        def test_sqlite_closed(tmp_path):
            db = sqlite3.connect(tmp_path / "x.db")
            db.execute("create table t (x)")
            db.close()
            (tmp_path / "notes.txt").write_text("hello")

        async def test_task_group_and_timeout():
            async with asyncio.timeout(5):
                async with asyncio.TaskGroup() as group:
                    group.create_task(asyncio.sleep(0))

        async def agen():
            yield 1
            yield 2

        async def test_exhausted_async_generator():
            assert [x async for x in agen()] == [1, 2]

        async def test_to_thread():
            assert await asyncio.to_thread(sum, [1, 2]) == 3
        """
    )
    result = pytester.runpytest("-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=6)


def test_a_test_that_expects_the_unawaited_warning_still_gets_it(
    pytester: pytest.Pytester,
) -> None:
    # As aiojobs' own suite does (tests/test_scheduler.py::test_run_after_close).
    pytester.makepyfile(
        """
        import pytest

        async def job():
            pass

        def test_expects_warning():
            coro = job()
            with pytest.warns(RuntimeWarning, match="was never awaited"):
                del coro
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_same_leak_from_the_same_line_is_reported_once_with_a_count(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        async def job():
            pass

        def test_loop_of_forgotten_calls():
            for _ in range(5):
                job()
        """
    )
    # -rN: no short summary, which repeats the message untruncated when CI is set.
    result = pytester.runpytest("-rN")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*left 5 leaks behind*", "*- coroutine: coroutine 'job' was never awaited (x5)*"]
    )
    assert result.stdout.str().count("was never awaited") == 1


def test_anyio_with_a_session_scoped_backend_gives_no_false_positive(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(ANYIO_INI)
    pytester.makepyfile(
        """
        import anyio
        import pytest

        pytestmark = pytest.mark.anyio

        @pytest.fixture(scope="session")
        def anyio_backend():
            return "asyncio"

        @pytest.fixture(scope="session")
        async def shared():
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.sleep, 3600)
                yield group
                group.cancel_scope.cancel()

        @pytest.fixture
        async def per_test():
            yield 1

        async def test_one(shared, per_test):
            await anyio.sleep(0)

        async def test_two(shared, per_test):
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.sleep, 0)
        """
    )
    pytester.runpytest("-W", "error::RuntimeWarning").assert_outcomes(passed=2)


def test_leaks_of_two_event_loops_in_one_test_are_all_counted(pytester: pytest.Pytester) -> None:
    # The first loop's tasks are freed before the second's are made: their ids come back.
    pytester.makepyfile(
        """
        import asyncio

        async def forever():
            await asyncio.Event().wait()

        async def main():
            asyncio.create_task(forever())
            await asyncio.sleep(0)

        def test_two_runs():
            asyncio.run(main())
            asyncio.run(main())
        """
    )
    result = pytester.runpytest("-rN")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*left 2 leaks behind*"])
    assert result.stdout.str().count("running forever() was still pending") == 2


def test_an_open_server_is_reported_as_a_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def handle(reader, writer):
            writer.close()

        async def test_serves():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)  # never closed
            assert server.sockets
        """
    )
    result = pytester.runpytest("-rN")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*- server: listening socket*a server was not closed*", "*test_an_open_server*:7 in*"]
    )


def test_what_a_session_factory_or_server_owns_is_not_blamed_on_a_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import socket
        import threading

        import pytest

        @pytest.fixture(scope="session")
        def connect():
            made = []  # held only by the factory's closure

            def factory(port):
                conn = socket.create_connection(("127.0.0.1", port))
                made.append(conn)
                return conn

            yield factory
            for conn in made:
                conn.close()

        @pytest.fixture(scope="session")
        def listener():
            sock = socket.create_server(("127.0.0.1", 0))
            accepted = []
            yield sock, accepted
            for conn in accepted:
                conn.close()
            sock.close()

        def test_pooled_connection(connect, listener):
            sock, accepted = listener
            conn = connect(sock.getsockname()[1])
            server_side, _ = sock.accept()  # the server side: the listener's owner's
            accepted.append(server_side)
            conn.sendall(b"x")
            assert server_side.recv(1) == b"x"
        """
    )
    pytester.runpytest("-W", "error::RuntimeWarning").assert_outcomes(passed=1)


def test_a_leaked_process_and_its_pipes_are_reported_once_on_the_test_that_started_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import subprocess
        import sys

        workers = []

        def test_starts_a_worker():
            worker = subprocess.Popen(
                [sys.executable, "-c", "import sys; sys.stdin.read()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            workers.append(worker)  # left running

        def test_stops_it_later():
            worker = workers.pop()
            worker.kill()
            worker.wait()
            del worker  # its unclosed pipes warn now, and belong to the first test
        """
    )
    result = pytester.runpytest("-rN", "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_starts_a_worker*",
            "*- subprocess: process * is still running at the end of the test*",
            "*_that_started_it.py:7 in test_starts_a_worker*",
        ]
    )
    assert "test_stops_it_later" not in result.stdout.str().split("ERRORS")[1]


def test_a_resource_a_plugin_makes_on_its_own_is_not_blamed_on_the_test(
    pytester: pytest.Pytester,
) -> None:
    # The plugin's code has a library filename and runs in a pytest hook: no user frame
    # is on the stack (a separate process, so no outer test's frames either).
    pytester.makeconftest(
        '''
        import types

        SOURCE = """
        import asyncio
        import socket

        import pytest

        kept = []

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            kept.append(socket.socket())  # the plugin's own socket, open on purpose
            asyncio.new_event_loop()  # dropped unclosed: the plugin's bug, not the test's
        """

        plugin = types.ModuleType("a_plugin")
        exec(compile(types.__name__ and SOURCE.replace("\\n        ", "\\n"), "<a plugin>", "exec"),
             plugin.__dict__)

        def pytest_configure(config):
            config.pluginmanager.register(plugin, "a_plugin")
        '''
    )
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=1)


def test_the_handler_of_a_pooled_connection_belongs_to_the_session_server(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio

        import pytest
        import pytest_asyncio

        async def echo(reader, writer):
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
            writer.close()

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def server():
            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            yield server
            server.close()
            await server.wait_closed()

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def pool():
            connections = []
            yield connections
            for _, writer in connections:
                writer.close()
                await writer.wait_closed()

        @pytest.mark.asyncio(loop_scope="session")
        async def test_pooled_connection(server, pool):
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            pool.append((reader, writer))  # the server's handler waits on it after the test
            writer.write(b"hi\\n")
            assert await reader.readline() == b"hi\\n"

        @pytest.mark.asyncio(loop_scope="session")
        async def test_own_server_left_serving(pool):
            server = await asyncio.start_server(echo, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            pool.append((reader, writer))
            server.close()  # the handler of the open connection still runs: the test's
            await server.wait_closed()

        @pytest.mark.asyncio(loop_scope="session")
        async def test_last(pool):
            pass  # the session's fixtures are torn down in the last test's teardown
        """
    )
    result = pytester.runpytest("-rN", "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_own_server_left_serving*",
            "*running echo() was still pending at the end of the test*",
        ]
    )
    assert "teardown of test_pooled_connection" not in result.stdout.str()


def test_a_socket_made_deep_inside_a_library_names_the_tests_line(
    pytester: pytest.Pytester,
) -> None:
    # Twelve library frames (a "<library>" filename is library code) between the test and
    # the socket: more than taskcast_origin_depth keeps, as inside httpx's connection pool.
    pytester.makepyfile(
        """
        CHAIN = "\\n".join(f"def f{i}():\\n    return f{i + 1}()" for i in range(12))
        LIBRARY = CHAIN + "\\ndef f12():\\n    import socket\\n    return socket.socket()\\n"
        library = {}
        exec(compile(LIBRARY, "<library>", "exec"), library)
        kept = []

        def test_deep():
            kept.append(library["f0"]())  # the line the report names
        """
    )
    result = pytester.runpytest("-rN", "-o", "taskcast_origin_depth=4")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*- socket: <socket.socket*", "*_names_the_tests_line.py:8 in test_deep*"]
    )
