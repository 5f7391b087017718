-- wrk script for bench/search.py: every request is a GET of a path picked at random from a
-- file (one path per line, e.g. /reception/patients?q=Laxmi%20Reddy), given after `--`:
--
--   wrk -t1 -c8 -d10s -s bench/search_wrk.lua -H 'HX-Request: true' http://127.0.0.1:PORT -- paths.txt
--
-- Like bench/wrk_report.lua it counts response statuses in every thread and prints one JSON
-- line (prefixed BENCH_JSON) at the end, so the bench can refuse a run with any non-200.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  paths = {}
  local file = assert(io.open(args[1], "r"), "cannot open the paths file")
  for line in file:lines() do
    if #line > 0 then
      table.insert(paths, line)
    end
  end
  file:close()
  assert(#paths > 0, "the paths file is empty")
  -- A different sequence per thread and per run.
  math.randomseed(os.time() * 1000 + (id or 0))
  for _ = 1, 10 do math.random() end
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
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
