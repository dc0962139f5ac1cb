#!/usr/bin/env python3
"""Bounded traffic for scripts/cluster.sh (stdlib only): customers at three tiers using two
gateway replicas the way real ones would, through the public APIs only.

Setup, through the real verification path: trial customers (`unverified`) sign up; individuals
apply for `identity_verified` and an organization for `organization_verified`, each screened on
submission and approved by the cluster's reviewer with a documented manual identity check.

Then, until --seconds have passed, rounds of: trial jobs (admitted until the trial window is
spent, then refused by the window cap), verified jobs, the organization's large run (it crosses
the indicative 1e23 threshold), one biological-sequence run past 1e23 that is held for review,
approved by the reviewer and resubmitted (a report falls due), public catalogue reads, and bad
credentials (missing, forged). The simulator reports usage for every admitted job. Each request goes to the replicas in
turn. A summary of answers by status is printed every 10 s.
"""

import argparse
import collections
import http.client
import json
import re
import secrets
import sys
import time
import uuid

PASSWORD = "cluster traffic passphrase"
# One H100 for an hour at the shipped policy's 0.4 utilization: 989.4e12 * 0.4 * 3600 FLOP.
H100_HOUR_FLOP = 1.42e18


class Client:
    """HTTP/1.1 keep-alive connections to several addresses, used in turn."""

    def __init__(self, addrs):
        self.addrs = addrs
        self.conns = {}
        self.turn = 0
        self.answers = collections.Counter()

    def next_addr(self):
        self.turn += 1
        return self.addrs[self.turn % len(self.addrs)]

    def request(self, method, path, body=None, token=None, addr=None, count=True):
        addr = addr or self.next_addr()
        headers = {}
        if body is not None:
            body = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if token:
            headers["authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            conn = self.conns.get(addr)
            if conn is None:
                host, port = addr.rsplit(":", 1)
                conn = self.conns[addr] = http.client.HTTPConnection(host, int(port), timeout=15)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                del self.conns[addr]
                if attempt == 2:
                    raise
        if count:
            route = re.sub(r"/[0-9a-f]{8}-[0-9a-f-]{27}", "/{id}", path.split("?")[0])
            self.answers[f"{method} {route} {resp.status}"] += 1
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return resp.status, doc


def must(status, doc, expected, what):
    if status not in expected:
        raise SystemExit(f"cluster traffic: {what}: HTTP {status} {json.dumps(doc)[:300]}")
    return doc


class Traffic:
    def __init__(self, args):
        self.public = Client(args.public)
        self.admin = Client([args.admin])
        with open(args.reviewer_password_file) as f:
            password = f.read().strip()
        st, doc = self.admin.request("POST", "/staff/v1/auth/token",
                                     {"email": args.reviewer, "password": password})
        self.staff = must(st, doc, (200,), "reviewer login")["access_token"]
        self.run_tag = uuid.uuid4().hex[:8]

    # --- accounts ----------------------------------------------------------------------------

    def customer(self, kind="individual"):
        email = f"{kind}-{uuid.uuid4().hex[:12]}@cluster.invalid"
        st, doc = self.public.request("POST", "/computegate/v1/auth/signup",
                                      {"email": email, "password": PASSWORD, "kind": kind})
        must(st, doc, (201,), "signup")
        return self.login(email)

    def login(self, email):
        st, doc = self.public.request("POST", "/computegate/v1/auth/token",
                                      {"email": email, "password": PASSWORD})
        return {"email": email, "token": must(st, doc, (200,), "login")["access_token"]}

    def verify(self, cust, application, tier):
        st, doc = self.public.request("POST", "/computegate/v1/kyc/applications", application,
                                      cust["token"])
        app = must(st, doc, (201,), "create application")["id"]
        st, doc = self.public.request("POST", f"/computegate/v1/kyc/applications/{app}/submit",
                                      None, cust["token"])
        must(st, doc, (200,), "submit application")
        decision = {"action": "approve", "tier": tier,
                    "reason": "cluster traffic: screening clear, identity checked",
                    "manual_checks": [{"evidence": "idv_verified",
                                       "note": "identity document checked on a video call (cluster traffic)"}]}
        deadline = time.time() + 30
        while True:
            # Screening runs at submission once the replicas have the list (within seconds).
            st, doc = self.admin.request("POST", f"/staff/v1/applications/{app}/decision",
                                         decision, self.staff)
            if st == 200:
                return
            if time.time() > deadline:
                must(st, doc, (200,), f"approve {tier}")
            time.sleep(0.5)

    # --- jobs --------------------------------------------------------------------------------

    def job(self, cust, gpus, hours, run=None, gpu_type="h100", dataset_kind=None):
        body = {"gpu_type": gpu_type, "gpu_count": gpus, "max_duration_hours": hours,
                "run_id": run or f"run-{uuid.uuid4().hex[:10]}"}
        if dataset_kind:
            body["dataset"] = {"kind": dataset_kind}
        return self.public.request("POST", "/v1/jobs", body, cust["token"])

    def approve_held_reviews(self):
        """Approves every pending job review; whether there was one."""
        st, doc = self.admin.request("GET", "/staff/v1/job-reviews?status=pending", None, self.staff)
        reviews = (doc or {}).get("reviews", []) if st == 200 else []
        for review in reviews:
            self.admin.request("POST", f"/staff/v1/job-reviews/{review['id']}/decision",
                               {"action": "approve", "reason": "cluster traffic: research use confirmed with the customer"},
                               self.staff)
        return bool(reviews)


def individual(name):
    suffix = uuid.uuid4().hex[:7].upper()
    return {
        "kind": "individual",
        "requested_tier": "identity_verified",
        "individual": {
            "legal_name": name,
            "date_of_birth": "1986-04-12",
            "nationality": "SE",
            "address": {"line1": "2 Storgatan", "city": "Uppsala", "postal_code": "75320", "country": "SE"},
            "id_document": {"type": "passport", "number": f"SE{suffix}", "issuing_country": "SE"},
            "phone": "+46 70 765 43 21",
        },
        "payment_fingerprint": f"pm_fp_{uuid.uuid4().hex[:12]}",
        "intended_use": {"category": "model_training",
                         "description": "Fine-tuning language models for customer support.",
                         "biological_sequence_data": False, "model_export": False},
        "expected_peak_accelerators": 16,
        "expected_total_flop": 1.0e22,
    }


def organization(legal_name):
    suffix = uuid.uuid4().hex[:7].upper()

    def person(name, dob, passport):
        return {"legal_name": name, "date_of_birth": dob, "nationality": "SE",
                "address": {"line1": "Kungsgatan 1", "city": "Stockholm", "postal_code": "11143", "country": "SE"},
                "id_document": {"type": "passport", "number": passport, "issuing_country": "SE"},
                "phone": "+46 70 123 45 67"}

    owner = person("Ingrid Solberg", "1975-05-20", f"SE{suffix}")
    owner["ownership_percent"] = 60.0
    return {
        "kind": "organization",
        "requested_tier": "organization_verified",
        "organization": {
            "legal_name": legal_name,
            "registration_number": f"556{suffix[:6]}",
            "jurisdiction": "SE",
            "address": {"line1": "Kungsgatan 1", "city": "Stockholm", "postal_code": "11143", "country": "SE"},
            "headquarters_country": "SE",
            "ultimate_parent_country": "SE",
            "representative": person("Erik Nyberg", "1980-02-11", f"SR{suffix}"),
            "beneficial_owners": [owner],
            "reseller": False,
        },
        "payment_fingerprint": f"pm_fp_org_{suffix}",
        "intended_use": {"category": "research",
                         "description": "Training foundation models for materials science.",
                         "biological_sequence_data": True, "model_export": False},
        "expected_peak_accelerators": 4096,
        "expected_total_flop": 2.0e25,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", action="append", required=True, help="HOST:PORT of a replica's public listener")
    parser.add_argument("--admin", required=True, help="HOST:PORT of an admin listener")
    parser.add_argument("--reviewer", required=True)
    parser.add_argument("--reviewer-password-file", required=True)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    deadline = time.time() + args.seconds

    t = Traffic(args)
    trial = [t.customer() for _ in range(3)]
    verified = []
    for name in ("Astrid Lindqvist", "Johan Berglund"):
        c = t.customer()
        t.verify(c, individual(name), "identity_verified")
        verified.append(c)
    org = t.customer("organization")
    t.verify(org, organization(f"Cluster Materials AB {t.run_tag}"), "organization_verified")
    print(f"setup done: {len(trial)} trial, {len(verified)} identity_verified, 1 organization_verified", flush=True)

    # The organization's large runs, sized to the simulator's fleet (128 B200, 1024 TPU v5p):
    # 128 B200 for 14 days ≈ 1.4e23 FLOP crosses the indicative 1e23 threshold (notify); a
    # biological-sequence run of 1024 TPU v5p for 150 h ≈ 1.0e23 is held for review, approved by
    # the reviewer and resubmitted, which files a report due in 15 days.
    big_run_sent = False
    bio = {"state": "submit", "run": f"bio-{t.run_tag}"}
    rounds = 0
    last_summary = time.time()
    while time.time() < deadline:
        rounds += 1
        for c in trial:
            t.job(c, 1, 0.25)
        for c in verified:
            t.job(c, 8, 1)
        if not big_run_sent:
            st, _ = t.job(org, 128, 336, gpu_type="b200")
            big_run_sent = st == 201
        elif bio["state"] == "submit":
            st, _ = t.job(org, 1024, 150, run=bio["run"], gpu_type="tpu-v5p", dataset_kind="biological_sequence")
            if st == 409:
                bio["state"] = "held"
        elif bio["state"] == "held":
            if t.approve_held_reviews():
                bio["state"] = "approved"
        elif bio["state"] == "approved":
            st, _ = t.job(org, 1024, 150, run=bio["run"], gpu_type="tpu-v5p", dataset_kind="biological_sequence")
            if st == 201:
                bio["state"] = "admitted"
        t.public.request("GET", "/v1/gpus")
        t.public.request("GET", "/v1/ping")
        t.public.request("POST", "/v1/jobs", {"gpu_count": 1})  # no credential: 401
        if rounds % 5 == 0:
            # A forged key now and then (every fifth round stays under the per-address
            # failed-authentication limit, which would slow every later request).
            forged = "cg_live_" + secrets.token_hex(16)
            t.public.request("GET", "/v1/jobs", None, forged)   # 401
        if rounds % 20 == 0:
            # Fresh tokens now and then, as clients refresh theirs.
            for c in trial + verified + [org]:
                c.update(t.login(c["email"]))
        if time.time() - last_summary >= 10:
            last_summary = time.time()
            summary = ", ".join(f"{k}: {v}" for k, v in sorted(t.public.answers.items()))
            print(f"round {rounds}: {summary}", flush=True)
        time.sleep(0.5)
    print(f"done after {rounds} rounds", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
