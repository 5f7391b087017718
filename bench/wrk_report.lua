-- wrk script for bench/run.py. It counts response statuses in every wrk thread and, at the
-- end, prints one JSON line (prefixed BENCH_JSON) so run.py reads exact figures instead of
-- parsing wrk's rounded text, and can refuse a run in which a page answered anything but
-- 200 (wrk itself counts a 302 to the login page as a success).

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local status_json = {}
  for code, n in pairs(counts) do
    table.insert(status_json, string.format('"%d": %d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.3f, "bytes": %d, "statuses": {%s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_ms": {"mean": %.3f, "p50": %.3f, "p90": %.3f, "p95": %.3f, "p99": %.3f, "max": %.3f}}\n',
    summary.requests, summary.duration / 1e6, summary.bytes, table.concat(status_json, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
