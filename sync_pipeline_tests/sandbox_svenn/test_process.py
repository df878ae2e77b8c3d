"""The Svenn sandbox as a process: --state across restarts, --rate-limit, concurrency, ``all``."""

from __future__ import annotations

import importlib.util
import json
import queue
import signal
import subprocess
import sys
import threading

import pytest
import requests

from sync_pipeline.sandbox.process import SandboxProcess

pytestmark = pytest.mark.integration


class Client:
    def __init__(self, sandbox: SandboxProcess, key: str):
        self.base = sandbox.base_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=30, **kwargs)

    def all(self, resource: str, **params) -> list[dict]:
        out, cursor = [], None
        while True:
            page = self("GET", f"/{resource}", params={**params, "cursor": cursor}).json()
            out += page["data"]
            if (cursor := page["next_cursor"]) is None:
                return out


def test_state_file_survives_a_restart(tmp_path):
    state = tmp_path / "svenn.state"
    args = ("--seed", "empty", "--state", str(state))
    with SandboxProcess.start("svenn", *args) as sandbox:
        api = Client(sandbox, sandbox.api_key)
        api("POST", "/employees", json={"first_name": "Ola", "employee_number": "7"})
        api("POST", "/projects", json={"name": "Tak", "member_ids": [1]})
        api("POST", "/customers", json={"name": "Borte"}, headers={"Idempotency-Key": "c1"})
        api("DELETE", "/customers/1")
        api("PUT", "/integrations/tripletex/errors", json={"errors": []})
        other_key = sandbox.new_company(seed="empty", name="Annen AS")
        Client(sandbox, other_key)("POST", "/customers", json={"name": "Hos den andre"})
        before = {
            r: api.all(r, include_deleted="true") for r in ("employees", "projects", "customers")
        }
        assert sandbox.stop() == 0
    assert state.exists()

    with SandboxProcess.start("svenn", *args) as sandbox:
        api = Client(sandbox, sandbox.api_key)
        after = {r: api.all(r, include_deleted="true") for r in before}
        assert after == before
        other = Client(sandbox, other_key)
        assert [c["name"] for c in other.all("customers")] == ["Hos den andre"]
        assert other("GET", "/company").json()["name"] == "Annen AS"
        # Ids, numbers, the clock and idempotency keys carry on where they were.
        assert (
            api(
                "POST", "/employees", json={"first_name": "Kari", "employee_number": "7"}
            ).status_code
            == 409
        )
        new = api("POST", "/projects", json={"name": "Vegg"}).json()
        assert new["id"] == 2
        assert new["updated_at"] > max(r["updated_at"] for rs in before.values() for r in rs)
        replay = api(
            "POST", "/customers", json={"name": "Borte"}, headers={"Idempotency-Key": "c1"}
        )
        assert replay.json()["id"] == 1 and len(api.all("customers", include_deleted="true")) == 1


def test_cli_rate_limit_refuses_with_429_and_retry_after():
    with SandboxProcess.start("svenn", "--seed", "empty", "--rate-limit", "3/60") as sandbox:
        api = Client(sandbox, sandbox.api_key)
        statuses = [api("GET", "/projects").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = api("GET", "/projects")
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1


def test_paging_while_another_client_writes_loses_and_repeats_nothing(svenn_sandbox):
    key = svenn_sandbox.new_company(seed="empty")
    api = Client(svenn_sandbox, key)
    for i in range(150):
        api("POST", "/customers", json={"name": f"Kunde {i}"})
    writing, stop = threading.Event(), threading.Event()
    writes = [0]

    def writer() -> None:
        other = Client(svenn_sandbox, key)
        while not stop.is_set():
            n = writes[0] = writes[0] + 1
            other("PATCH", f"/customers/{(n * 37) % 150 + 1}", json={"phone": str(n)})
            other("POST", "/customers", json={"name": f"Ny {n}"})
            writing.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(30)
        seen = []
        cursor = None
        while True:
            page = api("GET", "/customers", params={"limit": 20, "cursor": cursor}).json()
            seen += [(c["id"], c["version"]) for c in page["data"]]
            if (cursor := page["next_cursor"]) is None:
                break
    finally:
        stop.set()
        thread.join()
    assert writes[0] > 1
    assert len(seen) == len(set(seen))
    assert set(range(1, 151)) <= {record_id for record_id, _ in seen}
    versions: dict[int, int] = {}
    for record_id, version in seen:  # a record reappears only with a newer version
        assert version > versions.get(record_id, 0)
        versions[record_id] = version


@pytest.mark.skipif(
    importlib.util.find_spec("sync_pipeline.sandbox.tripletex") is None,
    reason="`all` also serves the Tripletex sandbox, which is not in this tree yet",
)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_all_serves_both_sandboxes_and_stops_both_cleanly(tmp_path, stop_signal):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync_pipeline.sandbox", "all", "--host", "127.0.0.1",
         "--tripletex-port", "0", "--svenn-port", "0", "--seed", "empty",
         "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        ready = {}
        for _ in range(2):
            line = json.loads(lines.get(timeout=60))
            ready[line["service"]] = line
        assert set(ready) == {"svenn", "tripletex"}
        for line in ready.values():
            health = requests.get(line["url"] + "/_sandbox/health", timeout=10).json()
            assert health["service"] == line["service"]
        svenn = ready["svenn"]
        resp = requests.post(
            svenn["api"] + "/customers",
            json={"name": "Lagret"},
            headers={"Authorization": f"Bearer {svenn['api_key']}"},
            timeout=10,
        )
        assert resp.status_code == 201
        proc.send_signal(stop_signal)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert '"stopped"' in proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert (tmp_path / "tripletex.state").exists()
    with SandboxProcess.start(
        "svenn", "--seed", "empty", "--state", str(tmp_path / "svenn.state")
    ) as sandbox:
        api = Client(sandbox, sandbox.api_key)
        assert [c["name"] for c in api.all("customers")] == ["Lagret"]
