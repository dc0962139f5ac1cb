"""Process harness shared by scripts/faults.py and benches/soak.py (stdlib only).

Starts PRIVATE instances only: a redis-server and a PostgreSQL cluster (initdb + pg_ctl, as the
`postgres` user when run as root) on free loopback ports with their data in a temp dir, the
simulator and gateway replicas of the `computegate` binary. The shared Redis/PostgreSQL of the
machine are never touched. Everything started is stopped by `Harness.close()` (also on Ctrl-C).
"""

import base64
import glob
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

PASSWORD = "correct horse battery staple"
USAGE_SECRET = "usage-secret-of-the-fault-suite"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=30.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {limit}s")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Http:
    """One keep-alive HTTP/1.1 connection per thread and address."""

    def __init__(self, timeout=15.0):
        self.timeout = timeout
        self.local = threading.local()

    def request(self, addr, method, path, body=None, headers=None):
        """(status, headers dict lower-case, body bytes, seconds); status 0 on a socket error."""
        conns = self.local.__dict__.setdefault("conns", {})
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        start = time.time()
        for attempt in (0, 1):
            conn = conns.get(addr)
            if conn is None:
                host, port = addr.rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
                conns[addr] = conn
            try:
                conn.request(method, path, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conns.pop(addr, None)
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, time.time() - start
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conns.pop(addr, None)
                # A stale keep-alive connection: retry once on a new one, nothing else.
                if attempt == 0 and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)) and time.time() - start < 0.05:
                    continue
                return 0, {}, str(e).encode(), time.time() - start
        return 0, {}, b"unreachable", time.time() - start


class OwnRedis:
    def __init__(self, root):
        self.port = free_port()
        self.dir = os.path.join(root, f"redis-{self.port}")
        os.makedirs(self.dir)
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class OwnPostgres:
    def __init__(self, root):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            raise RuntimeError("no /usr/lib/postgresql/*/bin/pg_ctl")
        self.bin = os.path.dirname(bins[-1])
        self.port = free_port()
        self.dir = os.path.join(root, f"pg-{self.port}")
        os.makedirs(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
            os.chmod(root, 0o755)
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self.start()
        subprocess.run(["psql", self.url_of("postgres"), "-qtA", "-c", "CREATE DATABASE test"],
                       check=True, capture_output=True)

    def url_of(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    @property
    def url(self):
        return self.url_of("test")

    def run(self, tool, *args):
        cmd = [os.path.join(self.bin, tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} failed: {out.stdout}{out.stderr}")

    def start(self):
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=100"
        self.run("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "pg.log"), "-w", "-t", "60", "start")
        wait_port(self.port)

    def stop(self):
        self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def pids(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                main = f.readline().strip()
        except OSError:
            return []
        kids = subprocess.run(["pgrep", "-P", main], capture_output=True, text=True).stdout.split()
        return [int(p) for p in [main, *kids] if p]

    def signal(self, sig):
        for p in self.pids():
            try:
                os.kill(p, sig)
            except OSError:
                pass

    def crash(self):
        self.signal(signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                break
        try:
            os.remove(os.path.join(self.data, "postmaster.pid"))
        except OSError:
            pass

    def sql(self, text):
        out = subprocess.run(["psql", self.url, "-qtA", "-c", text], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return out.stdout.strip()

    def close(self):
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)


class Proc:
    """A `computegate` child process whose first stdout line is its banner."""

    def __init__(self, args, env=None, log=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("COMPUTEGATE_")}
        full_env.update(env or {})
        self.log = open(log, "ab") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=full_env)
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"{args[1]} exited before listening (see {log})")
        self.banner = line
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    @property
    def pid(self):
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, limit=30):
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            return None


class Harness:
    def __init__(self, binary, redis=True, postgres=True):
        self.bin = binary
        self.root = tempfile.mkdtemp(prefix="cg-faults-")
        self.master_key = base64.b64encode(os.urandom(32)).decode()
        self.http = Http()
        self.procs = []
        self.redis = OwnRedis(self.root) if redis else None
        self.pg = OwnPostgres(self.root) if postgres else None
        self.sim = None
        self.sim_port = free_port()

    # --- processes -------------------------------------------------------------------------

    def start_sim(self):
        p = Proc([self.bin, "sim", "--addr", f"127.0.0.1:{self.sim_port}", "--speedup", "3600"],
                 log=os.path.join(self.root, "sim.log"))
        self.procs.append(p)
        self.sim = p
        return p

    def policy_file(self):
        """The shipped policy with the trial tier's concurrency, window and rate limits lifted
        (the per-run cap of 1e19 FLOP stays: the race scenario counts against it)."""
        path = os.path.join(self.root, "policy.toml")
        if not os.path.exists(path):
            here = os.path.dirname(os.path.abspath(__file__))
            with open(os.path.join(here, "..", "deploy", "policy", "default.toml")) as f:
                text = f.read()
            for old, new in [
                ("max_flop_per_customer_window = 1e19", "max_flop_per_customer_window = 1e23"),
                ("max_concurrent_jobs = 2 ", "max_concurrent_jobs = 16 "),
                ("rate_limit = { requests_per_second = 5.0, burst = 20 }",
                 "rate_limit = { requests_per_second = 20.0, burst = 100 }"),
            ]:
                if old not in text:
                    raise RuntimeError(f"policy line not found: {old}")
                text = text.replace(old, new, 1)
            with open(path, "w") as f:
                f.write(text)
        return path

    def config(self, name, extra_auth=""):
        job = lambda n, prefix: (f'[[routes]]\nname = "{n}"\npath_prefix = "{prefix}"\nmethods = ["POST"]\n'
                                 f'upstream = "sim"\nclass = "job_submit"\nprofile = "generic"\n\n')
        text = (f'data_dir = "{self.root}/{name}-data"\n'
                '[server]\npublic_addr = "127.0.0.1:0"\nadmin_addr = "127.0.0.1:0"\nshutdown_grace = "10s"\n\n'
                f'[upstreams.sim]\naddresses = ["127.0.0.1:{self.sim_port}"]\nresponse_timeout = "3s"\n'
                'connect_timeout = "1s"\n\n'
                + job("jobs", "/v1/jobs")
                + '[[routes]]\nname = "api"\npath_prefix = "/v1"\nupstream = "sim"\nclass = "authenticated"\n\n'
                f'[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nprincipal_cache_ttl = "5s"\n{extra_auth}\n\n')
        if self.pg:
            text += f'[database]\nurl = "{self.pg.url}"\n\n'
        if self.redis:
            text += f'[redis]\nurl = "{self.redis.url}"\nkey_prefix = "cg:"\n\n'
        text += f'[policy]\nfile = "{self.policy_file()}"\n\n'
        text += '[log]\nlevel = "warn"\n'
        path = os.path.join(self.root, f"{name}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_gateway(self, name, extra_auth=""):
        cfg = self.config(name, extra_auth)
        p = Proc([self.bin, "serve", "--config", cfg],
                 env={"COMPUTEGATE_MASTER_KEY": self.master_key, "COMPUTEGATE_USAGE_SECRET": USAGE_SECRET},
                 log=os.path.join(self.root, f"{name}.log"))
        rest = p.banner.removeprefix("computegate listening: public=")
        p.public, p.admin = rest.split(" admin=")
        p.name = name
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.kill(signal.SIGCONT)
            p.kill()
        if self.pg:
            self.pg.close()
        if self.redis:
            self.redis.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- API -------------------------------------------------------------------------------

    def signup_login(self, gw, tier=None):
        """A new customer, logged in. With `tier`, its row is set to that tier before its first
        authenticated request (a shortcut for the KYC approval: load needs the higher limits)."""
        email = f"f-{uuid.uuid4().hex}@example.com"
        st, _, body, _ = self.http.request(gw.public, "POST", "/computegate/v1/auth/signup",
                                           {"email": email, "password": PASSWORD, "kind": "individual"})
        if st != 201:
            raise RuntimeError(f"signup {st} {body[:200]}")
        customer = json.loads(body)["customer_id"]
        if tier:
            self.pg.sql(f"UPDATE customers SET tier = '{tier}' WHERE id = '{customer}'")
        return email, customer, self.login(gw, email)

    def login(self, gw, email):
        st, _, body, _ = self.http.request(gw.public, "POST", "/computegate/v1/auth/token",
                                           {"email": email, "password": PASSWORD})
        if st != 200:
            raise RuntimeError(f"login {st} {body[:200]}")
        return json.loads(body)["access_token"]

    def submit(self, gw, access, run, hours=0.01, gpus=1):
        job = {"gpu_type": "h100", "gpu_count": gpus, "max_duration_hours": hours, "run_id": run}
        return self.http.request(gw.public, "POST", "/v1/jobs", job,
                                 {"authorization": f"Bearer {access}"})

    def usage(self, gw, event):
        body = json.dumps(event)
        t = int(time.time())
        sig = hmac.new(USAGE_SECRET.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
        return self.http.request(gw.public, "POST", "/computegate/v1/meter/usage", body,
                                 {"content-type": "application/json", "x-computegate-signature": f"t={t},v1={sig}"})

    def metric(self, gw, name):
        st, _, body, _ = self.http.request(gw.admin, "GET", "/metrics")
        if st != 200:
            return None
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None


def until(limit, probe, every=0.05):
    """Seconds until probe() is true, or None after limit."""
    start = time.time()
    while time.time() - start < limit:
        if probe():
            return time.time() - start
        time.sleep(every)
    return None


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]
