-- wrk script for benches/load.sh.
--
-- WRK_WORKLOAD selects the request (the URL given to wrk carries the path):
--   get   GET  (e.g. /v1/ping, ~100 B JSON answer)
--   post  POST a 1 KiB JSON body (to /v1/echo)
-- At the end it prints one machine-readable line (latencies in microseconds):
--   WRKRESULT requests=… duration_us=… connect=… read=… write=… status=… timeout=… p50_us=… p90_us=… p99_us=… mean_us=…

local workload = os.getenv("WRK_WORKLOAD") or "get"

if workload == "post" then
  local prefix, suffix = '{"data":"', '"}'
  wrk.method = "POST"
  wrk.body = prefix .. string.rep("x", 1024 - #prefix - #suffix) .. suffix -- exactly 1024 bytes
  wrk.headers["Content-Type"] = "application/json"
elseif workload == "get" then
  wrk.method = "GET"
else
  error("WRK_WORKLOAD must be get or post, not " .. workload)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
    "p50_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
