"""Soak: mixed traffic through two gateway replicas at a bounded rate; per interval, each
replica's RSS and open descriptors, and the interval's requests, errors and p99. Run by
benches/soak.sh (see there for the settings).
"""

import datetime
import json
import os
import random
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from cgharness import Harness, fd_count, percentile, rss_kib  # noqa: E402


def main():
    binary = sys.argv[1]
    duration = int(os.environ.get("SOAK_DURATION", "600"))
    interval = int(os.environ.get("SOAK_INTERVAL", "60"))
    rate = float(os.environ.get("SOAK_RATE", "40"))
    workers = int(os.environ.get("SOAK_WORKERS", "8"))
    h = Harness(binary)
    try:
        h.start_sim()
        replicas = [h.start_gateway("soak-a"), h.start_gateway("soak-b")]
        customers = []
        for i in range(4):
            _, cid, access = h.signup_login(replicas[i % 2], "validated_end_user")
            st, _, body, _ = h.http.request(replicas[0].public, "POST", "/computegate/v1/keys",
                                            {"name": "soak"}, {"authorization": f"Bearer {access}"})
            key = json.loads(body)["key"] if st == 201 else None
            customers.append((cid, access, key))
        emails = [h.signup_login(replicas[0])[0] for _ in range(2)]
        jobs = []  # recently admitted job ids (read from the ledger) for usage events
        lock = threading.Lock()
        samples = []  # (seconds, ok)
        stop = time.time() + duration
        pace = workers / rate  # seconds between one worker's requests

        def one(rng):
            gw = rng.choice(replicas)
            cid, access, key = rng.choice(customers)
            r = rng.random()
            if r < 0.55:
                return h.http.request(gw.public, "GET", "/v1/echo", headers={"authorization": f"Bearer {access}"})
            if r < 0.70 and key:
                return h.http.request(gw.public, "GET", "/v1/echo", headers={"authorization": f"Bearer {key}"})
            if r < 0.85:
                return h.submit(gw, access, f"soak-{uuid.uuid4().hex[:12]}", hours=0.01)
            if r < 0.90:
                return h.http.request(gw.public, "POST", "/computegate/v1/auth/token",
                                      {"email": rng.choice(emails), "password": "correct horse battery staple"})
            with lock:
                job = rng.choice(jobs) if jobs else None
            if job is None:
                return h.http.request(gw.public, "GET", "/v1/echo/public")
            ev = {"event_id": f"soak-{uuid.uuid4().hex}", "job_id": job, "kind": "heartbeat",
                  "accelerator_type": "h100", "accelerator_seconds": rng.uniform(1, 30),
                  "at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            return h.usage(gw, ev)

        def worker(w):
            rng = random.Random(w)
            nxt = time.time() + rng.uniform(0, pace)
            while time.time() < stop:
                time.sleep(max(0.0, nxt - time.time()))
                nxt += pace
                st, hd, body, took = one(rng)
                ok = 0 < st < 500
                with lock:
                    samples.append((took, ok, st))

        def collect_jobs():
            while time.time() < stop:
                try:
                    ids = h.pg.sql("SELECT id FROM ledger_jobs WHERE status <> 'denied' ORDER BY decided_at DESC LIMIT 200").split()
                    with lock:
                        jobs[:] = ids
                except RuntimeError:
                    pass
                time.sleep(5)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
        threads.append(threading.Thread(target=collect_jobs))
        for t in threads:
            t.start()
        print("| minute | requests | errors (5xx or socket) | p99 ms | " +
              " | ".join(f"{g.name} RSS MiB | {g.name} fds" for g in replicas) + " |")
        print("|---|---|---|---|" + "---|---|" * len(replicas), flush=True)
        start = time.time()
        n = 0
        while time.time() < stop:
            time.sleep(min(interval, max(0.0, stop - time.time())))
            n += 1
            with lock:
                batch, samples[:] = samples[:], []
            lat = [s[0] * 1000 for s in batch]
            errors = sum(1 for s in batch if not s[1])
            p99 = percentile(lat, 99)
            cells = []
            for g in replicas:
                rss = rss_kib(g.pid)
                cells += [f"{rss / 1024:.1f}" if rss else "gone", str(fd_count(g.pid))]
            print(f"| {(time.time() - start) / 60:.1f} | {len(batch)} | {errors} | "
                  f"{p99:.1f} | " if p99 is not None else f"| {(time.time() - start) / 60:.1f} | 0 | 0 | n/a | ",
                  end="")
            print(" | ".join(cells) + " |", flush=True)
        for t in threads:
            t.join()
    finally:
        h.close()


if __name__ == "__main__":
    main()
