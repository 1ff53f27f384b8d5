import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import taskcast.django

from .models import Batch


@csrf_exempt
@require_POST
def start_import(request: HttpRequest) -> JsonResponse:
    """A sync view: make a batch and submit its import for the signed-in user."""
    batch = Batch.objects.create(name=request.POST.get("name", "batch"))
    rows = int(request.POST.get("rows", "3"))
    run = taskcast.django.submit(request, "import_rows", batch=batch, rows=rows)
    return JsonResponse({"run": run.id, "batch": batch.pk, "owner": run.owner})


@csrf_exempt
@require_POST
async def stop_import(request: HttpRequest, run_id: str) -> JsonResponse:
    """An async view: cancel the import."""
    cancelled = await taskcast.django.acancel(request, run_id, "stopped from the shop")
    return JsonResponse({"cancelled": cancelled})


@csrf_exempt
@require_POST
def stop_import_sync(request: HttpRequest, run_id: str) -> JsonResponse:
    """A sync view: cancel the import."""
    cancelled = taskcast.django.cancel(request, run_id, "stopped by a sync view")
    return JsonResponse({"cancelled": cancelled})


@csrf_exempt
@require_POST
async def count_view(request: HttpRequest) -> JsonResponse:
    """An async view: submit the async ORM task and wait for its result."""
    batch = await Batch.objects.aget(pk=int(request.POST["batch"]))
    run = await taskcast.django.asubmit(request, "count_items", batch=batch)
    done = await taskcast.django.get_app().wait(run.id, timeout=60)
    return JsonResponse({"state": done.state.value, "result": done.result})


async def events_view(request: HttpRequest, run_id: str) -> JsonResponse:
    """An async view: the run's events so far and to its end, read with aevents."""
    kinds = [event.type async for event in taskcast.django.aevents(request, run_id)]
    return JsonResponse({"events": kinds})


PAGE = """<!doctype html>
<title>run {run_id}</title>
<p id="state">watching</p>
<ol id="events"></ol>
<script>
const source = new EventSource({url});
const ends = ["completed", "failed", "cancelled", "timed_out", "shutdown"];
for (const type of ["queued", "started", "row", "rows_written", ...ends]) {{
  source.addEventListener(type, () => {{
    const item = document.createElement("li");
    item.textContent = type;
    document.getElementById("events").append(item);
    if (ends.includes(type)) {{
      document.getElementById("state").textContent = type;
      source.close();
    }}
  }});
}}
</script>
"""


def watch_page(request: HttpRequest, run_id: str) -> HttpResponse:
    """A page watching the run over SSE (the session cookie signs the stream)."""
    url = json.dumps(taskcast.django.watch_url(run_id))
    return HttpResponse(PAGE.format(run_id=escape(run_id), url=url))
