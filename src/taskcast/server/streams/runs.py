"""``GET /runs/{id}/events``: a run's log as Server-Sent Events.

Each event is written as ``id: <seq>``, ``event: <type>``, ``data: <json>`` (the event's data,
encoded once by the engine). A stream first replays the log after its cursor by itself, one
write per batch, in its share of the loop (``replay.ReplayBudget``) and cut short if the server
begins to stop (``replay.CutWhenStopping``); once it has caught up with the run's live
``Broadcast`` it becomes a member, and the broadcast writes each new batch to it, encoded once
for all members (``broadcast.py``). The stream ends after the terminal event, or after
``shutdown`` when the server stops. Keep-alive, write deadline and disconnects: ``sse.py``.
"""

from __future__ import annotations

import contextlib

from ...app import App
from .broadcast import Departure, Hub, Member
from .replay import CutWhenStopping, ReplayBudget, shutdown_frame
from .sse import ClientGone, EventStream, StreamObserver, StreamSettings, Writer
from .wire import encode_events


class RunStream(EventStream):
    """Stream the events of ``run_id`` after ``cursor`` until its log ends.

    With a ``hub`` and a raw transport, the stream joins the run's broadcast once caught up.
    ``observer`` hears of the stream's opening, closing and cut (if it stops reading).
    """

    def __init__(
        self,
        app: App,
        run_id: str,
        cursor: int,
        settings: StreamSettings,
        observer: StreamObserver,
        hub: Hub | None = None,
        *,
        replays: ReplayBudget,  # one per server: replays share the loop, not a slice each
    ) -> None:
        super().__init__(settings, observer)
        self._app = app
        self._run_id = run_id
        self._cursor = cursor
        self._hub = hub
        self._replays = replays

    async def stream(self, writer: Writer) -> None:
        cursor = self._cursor
        prefix = self.settings.retry_field
        # A stream that can join the run's broadcast once caught up replays by itself until
        # then; that replay is cut short when the server begins to stop (``CutWhenStopping``).
        hub = self._hub if writer.transport is not None else None
        while True:
            member: Member | None = None
            replay = CutWhenStopping(self._app if hub is not None else None)
            async with (
                replay,
                contextlib.aclosing(self._app.event_batches(self._run_id, after=cursor)) as batches,
            ):
                async for batch in batches:
                    seq = batch[-1].seq
                    if hub is not None:  # a replay: in its share of the loop, with every other
                        with await self._replays.step():
                            payload, prefix, cursor = prefix + encode_events(batch), b"", seq
                            writer.put(payload)
                        await writer.settle()
                    else:
                        payload, prefix, cursor = prefix + encode_events(batch), b"", seq
                        await writer.write(payload)
                    if batch[-1].is_terminal:
                        break
                    if hub is not None:
                        member = hub.try_join(self._run_id, writer.transport, cursor)  # type: ignore[arg-type]
                        if member is not None:
                            break
            if replay.cut:
                await writer.write(prefix + shutdown_frame(cursor), wait=False)
                return
            if member is None or hub is None:  # the log ended: terminal event, or shutdown
                return
            try:
                departure = await member.departed
            finally:
                hub.leave(member)
            if departure is Departure.ENDED:
                return
            if departure is Departure.GONE:
                raise ClientGone()
            # BEHIND: the client must take what it has before it reads on by itself.
            cursor = member.seq
            await writer.drain()
