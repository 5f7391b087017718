-- wrk script for bench/search.py: every request is a GET of a path picked at random from a
-- file (one path per line, e.g. /reception/patients?q=Laxmi%20Reddy), given after `--`:
--
--   wrk -t1 -c8 -d10s -s bench/search_wrk.lua -H 'HX-Request: true' http://127.0.0.1:PORT -- paths.txt
--
-- Through bench/wrk_report.lua it counts response statuses in every thread and prints one JSON
-- line (prefixed BENCH_JSON) at the end, so the bench can refuse a run with any non-200.

-- The status counting and the report are wrk_report.lua's; this file adds the paths.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")

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
