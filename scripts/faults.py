"""The fault suite: real processes, injected faults, counted outcomes. Run by scripts/faults.sh.

Each scenario prints one markdown row: what was acknowledged to clients, what the database
recorded, what was lost (acknowledged but not recorded), over-admitted (admitted beyond a budget),
errors, and recovery seconds (fault removed -> the operation works again).
"""

import datetime
import json
import signal
import sys
import threading
import time
import uuid

from cgharness import Harness, until

ROWS = []


def row(scenario, acknowledged="", recorded="", lost="", over="", errors="", recovery="", note=""):
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)
    r = [scenario, acknowledged, recorded, lost, over, errors, recovery, note]
    ROWS.append(r)
    print("| " + " | ".join(fmt(v) for v in r) + " |", flush=True)


def hammer(seconds, workers, fn):
    """Runs fn(i) in `workers` threads for `seconds`; returns the list of results."""
    results, lock, stop = [], threading.Lock(), time.time() + seconds

    def loop(w):
        i = 0
        while time.time() < stop:
            r = fn(w, i)
            if r == 0 or (isinstance(r, tuple) and r[0] == 0):
                time.sleep(0.01)  # a dead replica refuses at once: don't spin
            with lock:
                results.append(r)
            i += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def kill9_submissions(h):
    """kill -9 replica A while 8 clients submit jobs to A and B: every acknowledged admission
    must be in the ledger (matched by X-Request-Id)."""
    a, b = h.start_gateway("a"), h.start_gateway("b")
    _, _, access = h.signup_login(a, "organization_verified")
    killer = threading.Timer(1.5, lambda: a.kill())
    killer.start()

    def submit(w, i):
        gw = a if w % 2 == 0 else b
        st, hd, _, _ = h.submit(gw, access, f"k9-{w}-{i}")
        return st, hd.get("x-request-id")

    res = hammer(3.0, 8, submit)
    acked = {rid for st, rid in res if 200 <= st < 300 and rid}
    recorded = set(h.pg.sql("SELECT request_id FROM ledger_jobs WHERE status <> 'denied'").split())
    errors = sum(1 for st, _ in res if st == 0 or st >= 500)
    row("kill -9 under job submissions (PostgreSQL, 2 replicas)", len(acked), len(recorded),
        len(acked - recorded), "", errors, "", "errors = requests to the killed replica")
    b.kill()


def race_two_replicas(h):
    """Two replicas race submissions into one run whose cap fits exactly 7 jobs."""
    a, b = h.start_gateway("ra"), h.start_gateway("rb")
    _, _, access = h.signup_login(a)

    def submit(w, i):
        gw = a if w % 2 == 0 else b
        # 1 H100 x 1 h = 1.42e18 FLOP; the trial cap is 1e19 FLOP per run -> 7 fit.
        st, _, _, _ = h.submit(gw, access, "race", hours=1.0)
        return st

    res = hammer(2.0, 8, submit)
    admitted = sum(1 for st in res if 200 <= st < 300)
    row("two replicas race one run (cap = 7 jobs)", admitted, h.pg.sql(
        "SELECT count(*) FROM ledger_jobs WHERE status <> 'denied' AND reserved_flop > 1e18"),
        "", max(0, admitted - 7), sum(1 for st in res if st == 0 or st >= 500), "",
        f"{len(res)} submissions")
    a.kill()
    b.kill()


def kill9_usage(h):
    """kill -9 replica A while usage events stream to A and B: every acknowledged event must be
    recorded (by event id)."""
    a, b = h.start_gateway("ua"), h.start_gateway("ub")
    _, _, access = h.signup_login(a, "organization_verified")
    for i in range(20):
        h.submit(a, access, f"usage-{i}")
    jobs = h.pg.sql("SELECT id FROM ledger_jobs WHERE request_id IS NOT NULL AND status <> 'denied' "
                    "ORDER BY decided_at DESC LIMIT 20").split()
    killer = threading.Timer(1.5, lambda: a.kill())
    killer.start()
    now = lambda: datetime.datetime.now(datetime.timezone.utc).isoformat()

    def send(w, i):
        gw = a if w % 2 == 0 else b
        job = jobs[(w * 7 + i) % len(jobs)]
        ev = {"event_id": f"ev-{uuid.uuid4().hex}", "job_id": job, "kind": "heartbeat",
              "accelerator_type": "h100", "accelerator_seconds": 10.0 * (i + 1), "at": now()}
        st, _, _, _ = h.usage(gw, ev)
        return st, ev["event_id"]

    res = hammer(3.0, 8, send)
    acked = {e for st, e in res if st == 200}
    recorded = set(h.pg.sql("SELECT event_id FROM ledger_usage_events").split())
    row("kill -9 under usage events", len(acked), len(acked & recorded), len(acked - recorded), "",
        sum(1 for st, _ in res if st == 0 or st >= 500), "", "recorded = acknowledged ids found")
    b.kill()


def redis_stop_start(h):
    a, b = h.start_gateway("rsa"), h.start_gateway("rsb")
    email, _, _ = h.signup_login(a)
    h.redis.stop()
    ok = errors = 0
    for i in range(10):
        for gw in (a, b):
            try:
                h.login(gw, email)
                ok += 1
            except RuntimeError:
                errors += 1
    c = h.start_gateway("rsc")  # started during the outage
    try:
        h.login(c, email)
        ok += 1
    except RuntimeError:
        errors += 1
    h.redis.start()
    rec = until(60, lambda: all(h.metric(g, "computegate_notices_degraded") == 0.0 for g in (a, b, c)))
    row("Redis stop, logins on 3 replicas (one started during the outage), Redis start", ok, "", "", "",
        errors, rec if rec is not None else "not recovered", "recovery = notices subscribed again")
    for g in (a, b, c):
        g.kill()


def pg_outage(h, kind):
    a = h.start_gateway(f"pg{kind}")
    email, _, access = h.signup_login(a)
    h.http.request(a.public, "GET", "/v1/echo", headers={"authorization": f"Bearer {access}"})
    if kind == "stop":
        h.pg.stop()
    elif kind == "crash":
        h.pg.crash()
    else:
        h.pg.signal(signal.SIGSTOP)
    detect = until(15, lambda: h.metric(a, "computegate_store_down") == 1.0)
    time.sleep(5.5)  # past principal_cache_ttl (5 s): the plain route now runs on the grace
    admitted = served = 0
    worst = 0.0
    for i in range(10):
        st, _, _, took = h.submit(a, access, f"pg-{kind}-{i}")
        admitted += 200 <= st < 300
        worst = max(worst, took)
        st, _, _, took = h.http.request(a.public, "GET", "/v1/echo", headers={"authorization": f"Bearer {access}"})
        served += st == 200
        worst = max(worst, took)
    if kind == "hang":
        h.pg.signal(signal.SIGCONT)
    else:
        h.pg.start()
    t0 = time.time()

    def works():
        st, _, _, _ = h.submit(a, access, f"pg-{kind}-after-{time.time()}")
        return 200 <= st < 300

    rec = until(60, works, every=0.2)
    row(f"PostgreSQL {kind}", f"{admitted} admissions / {served} plain GETs ok", "", "", admitted, "",
        rec if rec is not None else "not recovered",
        f"known down after {detect:.2f} s; slowest answer while down {worst:.2f} s" if detect is not None
        else "never known down")
    a.kill()


def upstream_faults(h):
    a = h.start_gateway("up")
    _, _, access = h.signup_login(a)
    auth = {"authorization": f"Bearer {access}"}
    h.sim.kill()
    h.sim.wait()
    st_kill, _, _, took_kill = h.http.request(a.public, "GET", "/v1/echo", headers=auth)
    st_job, hd, _, _ = h.submit(a, access, "upstream-dead")
    job_state = h.pg.sql("SELECT status || ' ' || reserved_flop FROM ledger_jobs WHERE request_id = '%s'"
                         % hd.get("x-request-id", "")) or "no job row"
    h.start_sim()
    rec = until(30, lambda: h.http.request(a.public, "GET", "/v1/echo", headers=auth)[0] == 200)
    row("upstream kill -9", f"GET {st_kill} in {took_kill:.2f} s; job {st_job}", "", "", "", "",
        rec if rec is not None else "not recovered", f"the refused job's ledger row: {job_state}")
    h.sim.kill(signal.SIGSTOP)
    st_hang, _, _, took_hang = h.http.request(a.public, "GET", "/v1/echo", headers=auth)
    h.sim.kill(signal.SIGCONT)
    rec = until(30, lambda: h.http.request(a.public, "GET", "/v1/echo", headers=auth)[0] == 200)
    row("upstream hang (SIGSTOP)", f"GET {st_hang} in {took_hang:.2f} s", "", "", "", "",
        rec if rec is not None else "not recovered", "upstream response_timeout = 3 s")
    a.kill()


def sigterm_under_load(h):
    a = h.start_gateway("term")
    _, _, access = h.signup_login(a, "validated_end_user")
    auth = {"authorization": f"Bearer {access}"}
    term = threading.Timer(1.5, lambda: a.kill(signal.SIGTERM))
    term.start()
    t_start = time.time()
    res = hammer(3.0, 8, lambda w, i: h.http.request(a.public, "GET", "/v1/echo", headers=auth)[0])
    code = a.wait(20)
    ok = sum(1 for s in res if s == 200)
    refused = sum(1 for s in res if s == 0)
    other = {}
    for s in res:
        if s not in (0, 200):
            other[s] = other.get(s, 0) + 1
    row("SIGTERM under load (8 clients)", ok, "", "", "", f"non-200 answers {other or 'none'}, {refused} refused after close",
        f"exit {code} after {time.time() - t_start - 1.5:.2f} s", "refused = new connections after the listener closed")


SCENARIOS = {
    "kill9-submissions": kill9_submissions,
    "race": race_two_replicas,
    "kill9-usage": kill9_usage,
    "redis": redis_stop_start,
    "pg-stop": lambda h: pg_outage(h, "stop"),
    "pg-crash": lambda h: pg_outage(h, "crash"),
    "pg-hang": lambda h: pg_outage(h, "hang"),
    "upstream": upstream_faults,
    "sigterm": sigterm_under_load,
}


def main():
    binary = sys.argv[1]
    chosen = sys.argv[2:] or list(SCENARIOS)
    print("| scenario | acknowledged | recorded | lost | over-admitted | errors | recovery (s) | note |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    failed = False
    for name in chosen:
        h = Harness(binary)
        try:
            h.start_sim()
            SCENARIOS[name](h)
        except Exception as e:  # report and go on with the next scenario
            failed = True
            row(name, note=f"scenario failed: {e}")
        finally:
            h.close()
    lost = any(r[3] not in ("", 0) for r in ROWS)
    over = any(isinstance(r[4], int) and r[4] > 0 for r in ROWS)
    sys.exit(1 if (failed or lost or over) else 0)


if __name__ == "__main__":
    main()
