"""Benchmark the Tripletex sandbox: is it ever the bottleneck of a sync? (not a test)

Starts a sandbox on loopback with a 9,000-project company, then measures
1. a full project listing in pages of 1,000 with the fields the sync asks for, and
2. the rate of small single-record GET requests it sustains (bounded, a few client threads).

    .venv/bin/python scripts/bench_tripletex_sandbox.py [--projects 9000] [--requests 4000]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync_pipeline.sandbox.process import SandboxProcess

SYNC_FIELDS = (
    "id,version,number,name,startDate,endDate,isClosed,customer(id),projectManager(id),"
    "mainProject(id),participants(employee(id)),changes"
)


def session_for(sandbox: SandboxProcess, employee_token: str) -> requests.Session:
    expires = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    resp = requests.put(
        f"{sandbox.base_url}/token/session/:create",
        params={
            "consumerToken": "bench",
            "employeeToken": employee_token,
            "expirationDate": expires,
        },
        timeout=30,
    )
    resp.raise_for_status()
    http = requests.Session()
    http.auth = ("0", resp.json()["value"]["token"])
    return http


def full_listing(http: requests.Session, base: str, page: int) -> tuple[float, int]:
    start, seen, offset = time.perf_counter(), 0, 0
    while True:
        resp = http.get(
            f"{base}/project",
            params={"from": offset, "count": page, "fields": SYNC_FIELDS},
            timeout=120,
        )
        resp.raise_for_status()
        values = resp.json()["values"]
        seen += len(values)
        offset += page
        if len(values) < page:
            return time.perf_counter() - start, seen


def single_gets(sandbox: SandboxProcess, token: str, total: int, threads: int) -> float:
    """Requests/s for ``GET /project/{id}`` over keep-alive connections.

    Uses ``http.client`` rather than ``requests``: the latter's per-call overhead would
    measure the Python client, not the sandbox (on 2 cores they share the CPU anyway).
    """
    per_thread = total // threads
    session = session_for(sandbox, token).auth[1]
    auth = "Basic " + base64.b64encode(f"0:{session}".encode()).decode()
    host, port = sandbox.root_url.split("//", 1)[1].rsplit(":", 1)

    def worker(_: int) -> int:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            for i in range(per_thread):
                conn.request(
                    "GET",
                    f"/v2/project/{1 + i % 9000}?fields=id,version,number,name",
                    headers={"Authorization": auth},
                )
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET failed with {resp.status}")
        finally:
            conn.close()
        return per_thread

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        done = sum(pool.map(worker, range(threads)))
    return done / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--projects", type=int, default=9000)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--page", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=4000, help="single GETs in the rate test")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    with SandboxProcess.start("tripletex", "--seed", "empty") as sandbox:
        t0 = time.perf_counter()
        token = sandbox.new_company(
            seed="empty", synthetic_projects=args.projects, synthetic_customers=args.customers
        )
        print(f"company with {args.projects} projects ready in {time.perf_counter() - t0:.2f} s")
        http = session_for(sandbox, token)
        times = []
        for _ in range(args.rounds):
            elapsed, seen = full_listing(http, sandbox.base_url, args.page)
            assert seen == args.projects, seen
            times.append(elapsed)
        print(
            f"full listing of {args.projects} projects in pages of {args.page} "
            f"(fields={SYNC_FIELDS}): median {statistics.median(times):.2f} s, "
            f"best {min(times):.2f} s over {args.rounds} rounds"
        )
        rate = single_gets(sandbox, token, args.requests, args.threads)
        print(
            f"single-record GET /project/{{id}}: {rate:,.0f} requests/s sustained "
            f"({args.requests} requests, {args.threads} client threads on the same machine, keep-alive)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
