-- wrk script of `npm run bench` (BENCH_CLIENT=wrk|both), see bench/load.ts runWrk.
-- POSTs the body in WRK_BODY on every keep-alive connection, counts the answers per status, checks
-- that every 2xx answer holds WRK_EXPECT (a piece of the expected stats). wrk runs for a duration
-- (-d): its threads cannot end a run early (thread:stop() leaves the main thread sleeping to the
-- end), so a run is a time, not a number of requests, and the requests in flight at its end are
-- abandoned.
-- `done` prints one line, `WRK_RESULT {...}`, that runWrk parses.

local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/x-ndjson"

local expect = os.getenv("WRK_EXPECT") or ""
local threads = {}

ok = 0
non2xx = 0
bad = 0
-- Non-2xx answers per status, as "status:count ...": rebuilt from a small table on each one, since
-- a string appended to per answer costs quadratic time once thousands are refused (bench:k6).
statuses = ""
local counts = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if expect ~= "" and not string.find(body, expect, 1, true) then
      bad = bad + 1
    end
  else
    non2xx = non2xx + 1
    counts[status] = (counts[status] or 0) + 1
    local parts = {}
    for s, n in pairs(counts) do
      parts[#parts + 1] = s .. ":" .. n
    end
    statuses = table.concat(parts, " ")
  end
end

function done(summary, latency, requests)
  local t_ok, t_non, t_bad, t_statuses = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok")
    t_non = t_non + t:get("non2xx")
    t_bad = t_bad + t:get("bad")
    t_statuses = t_statuses .. t:get("statuses") .. " "
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"answers":%d,"ok":%d,"non2xx":%d,"bad":%d,"statuses":"%s",' ..
      '"errors":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d}\n',
    summary.requests, t_ok, t_non, t_bad, t_statuses,
    e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
