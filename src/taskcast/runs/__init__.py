"""The engine: what happens to runs in this process, from queued to their one terminal state.

    coordinator.py   Coordinator: owns this process's runs, composes the rooms below
    active.py        ActiveRun and its phases (this process's bookkeeping of a run)
    slots.py         Slots: the concurrency limits, and lending a waiting parent's slot
    attempts.py      Attempts: running a body under its deadline; what its exit means
    outcomes.py      Outcomes: the one writer of a run's lifecycle events and states
    waits.py         Endings (awaiting a run's end) and DependencyHolds (``after=``)
    dependencies.py  ``after=`` checked at the door: unknown ids, cycles; failure wording
    family.py        child runs: ``ctx.spawn`` handles and ``ctx.map``
    context.py       Context: what a running task talks to
    signals.py       Mailbox: signals kept for a run until its task asks
    shutdown.py      stopping the runs at shutdown, and the report
    ports.py         the protocols others talk to the engine through (RunServices,
                     WorkQueue, QueueOwner)

The engine reads and writes runs through the ``Store`` contract and takes them from a
``WorkQueue`` (``taskcast.queues``); it never knows which store or which queue it has.
"""
