"""With the GPU partition full, a GPU spawn says why it waits, and can be cancelled."""

import json
import subprocess
import time

from ..support.hub import HUB_URL, demo_admin, login, squeue_active
from ..support.metrics import events_of, scrape, total


def _progress_messages(hub, user, wanted: str, timeout: float = 30) -> list[str]:
    """Read the spawn progress event stream until a message contains ``wanted``."""
    messages = []
    url = f"{hub.url}/hub/api/users/{user}/server/progress"
    with hub.http.get(url, stream=True, timeout=timeout) as response:
        deadline = time.monotonic() + timeout
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                messages.append(json.loads(line[5:])["message"])
                if wanted in messages[-1]:
                    break
            if time.monotonic() > deadline:
                break
    return messages


def test_full_gpu_partition_explains_the_wait_and_cancel_leaves_nothing(hub, gpus_full):
    user = "demo28"
    hub.stop(user)
    response = hub.spawn(user, {"partition": "gpu", "gpus": 1})
    assert response.status_code == 202, response.text  # still pending after 10 s

    messages = _progress_messages(hub, user, "in line")
    waiting = [m for m in messages if "Waiting for a free GPU in partition gpu" in m]
    assert waiting and "1st in line" in waiting[-1], messages
    job = squeue_active(["-u", user, "-o", "%i %T"]).split()
    assert job[1] == "PENDING"
    # the operator sees the wait too: in the metrics, the event log and the admin view
    samples = scrape()
    assert total(samples, "factorylab_pending_sessions", reason="Resources") >= 1
    assert total(samples, "factorylab_sessions", state="pending", partition="gpu") >= 1
    reasons = [e.get("reason") for e in events_of(job[0]) if e["event"] == "pending_reason_changed"]
    assert reasons and reasons[-1] == "Resources", reasons
    admin, _ = login(*demo_admin())
    view = admin.get(f"{HUB_URL}/hub/factorylab/admin", timeout=30)
    waiting = view.text.split('id="fl-waiting"')[1].split("</table>")[0]
    assert f'data-job="{job[0]}"' in waiting and ">Resources<" in waiting, waiting

    cancel = hub.api("DELETE", f"/users/{user}/server")
    assert cancel.status_code in (202, 204), cancel.text
    deadline = time.monotonic() + 15
    while squeue_active(["-u", user]) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert squeue_active(["-u", user]) == "", "the cancelled spawn left a job behind"
    assert hub.server(user) is None
    # The hub is healthy afterwards: the same user can start once GPUs are free.
    subprocess.run(["scancel", *gpus_full], check=True)
    assert hub.start(user, {"partition": "gpu", "gpus": 1})["ready"]
    hub.stop(user)
