-- wrk script for qbert serve: POSTs the JSON bodies of a file (one a line)
-- in turn, and at the end prints one line of totals and the count of each
-- status, for tests/test_serve.sh and bench/serve_load.sh to read.
--   wrk -s load.lua URL -- BODIES [PATH] [API_KEY]
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  path = args[2] or "/predict"
  if args[3] then wrk.headers["Authorization"] = "Bearer " .. args[3] end
  wrk.headers["Content-Type"] = "application/json"
  at = (id * 7919) % #bodies
  statuses = {}
end

function request()
  at = at % #bodies + 1
  return wrk.format("POST", path, nil, bodies[at])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do counts[k] = (counts[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format("RESULT requests %d seconds %.3f rps %.1f p50_ms %.2f p99_ms %.2f max_ms %.2f " ..
    "connect %d read %d write %d timeout %d non2xx %d\n", summary.requests, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect, e.read, e.write, e.timeout, e.status))
  for k, v in pairs(counts) do io.write(string.format("STATUS %d %d\n", k, v)) end
end
