"""Forged-credential flood (see benches/forged_flood.sh): valid clients' throughput alone and
while a forger floods the gateway with one kind of forged credential at a time, and the
gateway's resident memory. Stdlib only; loopback only."""

import base64
import json
import multiprocessing as mp
import os
import random
import string
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from cgharness import Harness  # noqa: E402

KINDS = ["api_key_random_id", "api_key_real_id", "jwt_forged", "login_bad"]


def core_split():
    """(server cores, forger cores) when pinning (FLOOD_PIN, default on with >= 2 cores), else
    (None, None). The forger gets the last core to itself, so the CPU its own Python loop burns
    does not come out of the valid clients' and the gateway's share: what is left to measure is
    what the forged requests cost the gateway."""
    cores = sorted(os.sched_getaffinity(0))
    if os.environ.get("FLOOD_PIN", "1" if len(cores) >= 2 else "0") != "1" or len(cores) < 2:
        return None, None
    return set(cores[:-1]), {cores[-1]}


SERVER_CORES, FORGER_CORES = core_split()


def pin_process(pid, cores):
    """Pins every thread of `pid` (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:
            pass


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rand_alnum(n, rng):
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def cpu_seconds(pid):
    """utime + stime of a process, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Flood(Harness):
    """The fault harness on SQLite, with the shipped argon2 cost and rate limits out of the way."""

    def policy_file(self):
        path = os.path.join(self.root, "policy.toml")
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "deploy", "policy", "default.toml")) as f:
            lines = f.read().splitlines()
        out = ["rate_limit = { requests_per_second = 100000.0, burst = 100000 }"
               if l.lstrip().startswith("rate_limit") else l for l in lines]
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")
        return path

    def config(self, name, extra_auth=""):
        text = (f'data_dir = "{self.root}/{name}-data"\n'
                '[server]\npublic_addr = "127.0.0.1:0"\nadmin_addr = "127.0.0.1:0"\nshutdown_grace = "5s"\n\n'
                f'[upstreams.sim]\naddresses = ["127.0.0.1:{self.sim_port}"]\n\n'
                '[[routes]]\nname = "api"\npath_prefix = "/v1"\nupstream = "sim"\nclass = "authenticated"\n\n'
                f'[policy]\nfile = "{self.policy_file()}"\n\n[log]\nlevel = "warn"\n')
        path = os.path.join(self.root, f"{name}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path


def valid_worker(addr, bearers, seconds, threads, out):
    """Keep-alive GETs with valid credentials for `seconds`; puts (ok, other) on `out`."""
    if SERVER_CORES:
        os.sched_setaffinity(0, SERVER_CORES)
    host, port = addr.rsplit(":", 1)
    counts = [0, 0]
    lock = threading.Lock()
    stop = time.time() + seconds

    def run(i):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        ok = other = 0
        n = i
        while time.time() < stop:
            bearer = bearers[n % len(bearers)]
            n += 1
            try:
                conn.request("GET", "/v1/echo", headers={"authorization": f"Bearer {bearer}"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    ok += 1
                else:
                    other += 1
            except (OSError, http.client.HTTPException):
                other += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
        with lock:
            counts[0] += ok
            counts[1] += other

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(tuple(counts))


def forger(addr, kind, facts, seconds, threads, out):
    """Floods from 127.0.0.2 with forged credentials of `kind`; puts {status: count} on `out`."""
    if FORGER_CORES:
        os.sched_setaffinity(0, FORGER_CORES)
    host, port = addr.rsplit(":", 1)
    stop = time.time() + seconds
    totals = {}
    lock = threading.Lock()

    def request(conn, rng):
        if kind == "login_bad":
            email = facts["email"] if rng.random() < 0.5 else f"nobody-{rand_alnum(12, rng)}@example.com"
            body = json.dumps({"email": email, "password": rand_alnum(20, rng)})
            conn.request("POST", "/computegate/v1/auth/token", body=body,
                         headers={"content-type": "application/json"})
            return
        if kind == "api_key_random_id":
            cred = f"cg_{rand_alnum(16, rng)}_{b64url(os.urandom(32))}"
        elif kind == "api_key_real_id":
            cred = f"cg_{facts['key_id']}_{b64url(os.urandom(32))}"
        else:
            header = b64url(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": facts["kid"]}).encode())
            claims = {"sub": facts["customer"], "iss": "computegate", "aud": "computegate-api",
                      "exp": int(time.time()) + 600, "nbf": int(time.time()) - 5, "jti": rand_alnum(16, rng)}
            cred = f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(os.urandom(64))}"
        conn.request("GET", "/v1/echo", headers={"authorization": f"Bearer {cred}"})

    def run(i):
        rng = random.Random(i)
        mine = {}
        conn = None
        while time.time() < stop:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=("127.0.0.2", 0))
            try:
                request(conn, rng)
                resp = conn.getresponse()
                resp.read()
                mine[resp.status] = mine.get(resp.status, 0) + 1
                if (resp.getheader("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                mine[0] = mine.get(0, 0) + 1
                conn.close()
                conn = None
        with lock:
            for k, v in mine.items():
                totals[k] = totals.get(k, 0) + v

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(totals)


def phase(gw, bearers, kind, facts, seconds, valid_threads, forger_threads):
    q_valid, q_forge = mp.Queue(), mp.Queue()
    procs = [mp.Process(target=valid_worker, args=(gw.public, bearers, seconds, valid_threads, q_valid))]
    if kind:
        procs.append(mp.Process(target=forger, args=(gw.public, kind, facts, seconds, forger_threads, q_forge)))
    peak_rss = 0
    cpu_before = cpu_seconds(gw.pid)
    for p in procs:
        p.start()
    end = time.time() + seconds
    while time.time() < end:
        peak_rss = max(peak_rss, status_kib(gw.pid, "VmRSS"))
        time.sleep(0.25)
    ok, other = q_valid.get()
    forged = q_forge.get() if kind else {}
    for p in procs:
        p.join()
    cpu = cpu_seconds(gw.pid) - cpu_before
    return ok / seconds, other, forged, peak_rss, cpu


def main():
    binary = sys.argv[1]
    seconds = int(os.environ.get("FLOOD_PHASE", "10"))
    valid_threads = int(os.environ.get("FLOOD_VALID_THREADS", "4"))
    forger_threads = int(os.environ.get("FLOOD_FORGER_THREADS", "16"))
    h = Flood(binary, redis=False, postgres=False)
    try:
        h.start_sim()
        gw = h.start_gateway("flood")
        if SERVER_CORES:
            for pid in (gw.pid, h.sim.pid):
                pin_process(pid, SERVER_CORES)
        print(f"pinning: gateway, simulator and valid clients on cores {sorted(SERVER_CORES or [])}, "
              f"forger on {sorted(FORGER_CORES or [])} (FLOOD_PIN=0: no pinning)", file=sys.stderr)
        email, customer, access = h.signup_login(gw)
        st, _, body, _ = h.http.request(gw.public, "POST", "/computegate/v1/keys", {"name": "flood"},
                                        {"authorization": f"Bearer {access}"})
        if st != 201:
            raise RuntimeError(f"key creation {st} {body[:200]}")
        key = json.loads(body)
        st, _, body, _ = h.http.request(gw.public, "GET", "/.well-known/jwks.json")
        kid = json.loads(body)["keys"][0]["kid"]
        facts = {"email": email, "customer": customer, "key_id": key["id"], "kid": kid}
        bearers = [access, key["key"]]
        print("| phase | valid req/s | ratio to baseline | valid non-200 | forged answers (status: count) "
              "| gateway CPU s | gateway peak VmRSS (MiB) |")
        print("|---|---|---|---|---|---|---|")
        rows = []
        base, other, _, rss, cpu = phase(gw, bearers, None, facts, seconds, valid_threads, forger_threads)
        rows.append(("baseline", base, other, {}, rss, cpu))
        kinds = [k for k in os.environ.get("FLOOD_KINDS", " ".join(KINDS)).split() if k]
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise SystemExit(f"FLOOD_KINDS: unknown {unknown}; known: {KINDS}")
        for kind in kinds:
            time.sleep(2)
            rows.append((kind,) + phase(gw, bearers, kind, facts, seconds, valid_threads, forger_threads))
        time.sleep(2)
        after, other, _, rss, cpu = phase(gw, bearers, None, facts, seconds, valid_threads, forger_threads)
        rows.append(("baseline again", after, other, {}, rss, cpu))
        reference = (base + after) / 2
        for name, rate, other, forged, rss, cpu in rows:
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(forged.items())) or "-"
            print(f"| {name} | {rate:.0f} | {rate / reference:.2f} | {other} | {shown} | {cpu:.1f} "
                  f"| {rss / 1024:.0f} |")
        print()
        print(f"Gateway VmHWM (peak resident over the whole run): {status_kib(gw.pid, 'VmHWM') / 1024:.0f} MiB; "
              f"ratio reference = mean of the two baselines ({reference:.0f} req/s).")
    finally:
        h.close()


if __name__ == "__main__":
    main()
