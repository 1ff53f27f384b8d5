"""An app with schedules for ``taskcast serve --app tests.dashboard.schedules_app:app``."""

import taskcast

app = taskcast.App()


@app.task(name="sample.report")
async def report(kind: str = "daily") -> str:
    """Return ``kind``."""
    return kind


app.schedule("nightly", "sample.report", {"kind": "nightly"}, cron="0 3 * * *")
app.schedule("hourly", "sample.report", every=3600, enabled=False)
