-- Method, body and paths come from the environment (bench/run.py sets them per scenario);
-- done() prints one line of JSON that run.py reads.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local file = assert(io.open(body_file, "rb"))
  wrk.body = file:read("*a")
  file:close()
end

-- A file of paths, one a line: each request takes the next, in turn. A line may name, after
-- a tab, the bearer token to send with its path.
local paths_file = os.getenv("BENCH_PATHS_FILE")
if paths_file and paths_file ~= "" then
  local paths, tokens = {}, {}
  for line in io.lines(paths_file) do
    local path, token = line:match("^([^\t]*)\t(.*)$")
    paths[#paths + 1] = path or line
    tokens[#paths] = token
  end
  local turn = 0
  function request()
    turn = turn % #paths + 1
    local token = tokens[turn]
    if not token then
      return wrk.format(nil, paths[turn])
    end
    -- Given headers replace wrk.headers (those of -H): copy them.
    local headers = {}
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    headers["Authorization"] = "Bearer " .. token
    return wrk.format(nil, paths[turn], headers)
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %.0f, "duration_us": %.0f, "p50_us": %.0f, "p99_us": %.0f, "max_us": %.0f, '
      .. '"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
