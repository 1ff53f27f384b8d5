"""An app for ``taskcast serve --app tests.timeorder.sample_app:app`` (the demo tasks join it)."""

import taskcast

app = taskcast.App()


@app.task(name="sample.report", rate_limit="1/h", rate_key="team", priority=2)
async def report(team: str = "core") -> str:
    """At most one report an hour per team."""
    return team


@app.task(name="sample.build", concurrency=1, concurrency_key="repo")
async def build(repo: str) -> str:
    """One build at a time per repository."""
    return repo


app.schedule("nightly", "sample.report", {"team": "ops"}, cron="0 3 * * *", timezone="Europe/Paris")
