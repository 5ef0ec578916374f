-- Replays pre-signed webhook events, each once: thread k of n sends lines k, k+n, k+2n, ...
-- of the events file ("<signature>\t<body>" per line). BENCH_EVENTS names the file.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(args[1])
  local path = os.getenv("BENCH_EVENTS")
  events = {}
  local i = 0
  for line in io.lines(path) do
    if i % n == id then
      local tab = line:find("\t", 1, true)
      table.insert(events, {line:sub(1, tab - 1), line:sub(tab + 1)})
    end
    i = i + 1
  end
  next_event = 1
  sent = 0
end

function request()
  local event = events[next_event]
  next_event = next_event % #events + 1
  sent = sent + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Stripe-Signature"] = event[1],
    ["X-Forwarded-Proto"] = "https",
  }, event[2])
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("sent") end
  io.write(string.format(
    "BENCH {\"requests\": %d, \"non2xx\": %d, \"socket_errors\": %d, \"seconds\": %.6f, " ..
    "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"sent\": %d}\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, total))
end
