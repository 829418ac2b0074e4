-- wrk script: the refresh-token grant with strict rotation (RFC 6749 §6, RFC 9700 §4.14.2),
-- generic over dotgit and the oidc-provider peer.
--
--   BENCH_TOKENS=refresh_tokens.txt BENCH_CLIENT_ID=id BENCH_CLIENT_SECRET=secret \
--   BENCH_PATH=/oauth/token [BENCH_TOKENS_OUT=next_refresh_tokens.txt] [BENCH_WRK_THREADS=1] \
--   wrk -t1 -c32 -d10s -s bench/lua/refresh.lua https://127.0.0.1:PORT
--
-- Every refresh token is its own family. request() takes the oldest token of a FIFO queue and
-- sends grant_type=refresh_token&refresh_token=<t> with HTTP Basic client auth; response()
-- takes the rotated refresh_token out of the JSON answer and puts it at the back of the queue.
-- wrk answers a connection's responses in that connection's order, not globally in request
-- order, hence many independent families (keep their number well above -c): a token is only
-- ever in flight once, and only its successor is sent later. With wrk -tN set
-- BENCH_WRK_THREADS=N so that the threads split the tokens instead of sharing families.
--
-- Counted, and printed by done() one per line:
--   failed N     answers that were not 200 (including the answers to starved requests)
--   starved N    request() found the queue empty and sent a harmless bogus refresh instead
--   missing N    200 answers with no refresh_token in them (not rotated: the family is lost)
--   refreshed N  200 answers that carried a new refresh token
--   families N   tokens left in the queues at the end (unused, still valid)
-- A run is trustworthy only with failed 0, starved 0 and missing 0. Tokens that were in
-- flight when wrk stopped are lost (their answer is never read); the others are still valid
-- and, when BENCH_TOKENS_OUT is set, done() writes them there, one per line, so that a next
-- round can start from them (the original file is spent once a token of it was used).

local function need(name)
  local v = os.getenv(name)
  if v == nil or v == "" then error(name .. " is not set") end
  return v
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
      .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- application/x-www-form-urlencoded value: everything but unreserved characters is %-encoded
local function formenc(s)
  if not s:find("[^%w%-%._~]") then return s end
  return (s:gsub("[^%w%-%._~]", function(ch) return string.format("%%%02X", ch:byte()) end))
end

local function read_lines(file)
  local list = {}
  local f = assert(io.open(file, "r"), "cannot open " .. file)
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" then list[#list + 1] = line end
  end
  f:close()
  if #list == 0 then error(file .. " holds no tokens") end
  return list
end

local threads = {}

-- runs in the setup/done Lua state, once per thread, just before that thread's init()
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

-- FIFO queue: queue[head .. tail] are the tokens waiting to be sent
queue, head, tail = {}, 1, 0
failed, starved, missing, refreshed = 0, 0, 0, 0
local path, headers
-- wrk calls request() once on the first thread, before any connection, only to check that it
-- yields a well-formed request: that call must not take a token out of the queue.
local verifying = false

function init(args)
  local tokens = read_lines(need("BENCH_TOKENS"))
  path = need("BENCH_PATH")
  headers = {
    ["Authorization"] = "Basic " .. base64(need("BENCH_CLIENT_ID") .. ":" .. need("BENCH_CLIENT_SECRET")),
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  -- with -tN, thread k gets every N-th token (threads never share a family)
  local k = thread_index or 1
  local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "") or 1
  for j = k, #tokens, nthreads do
    tail = tail + 1
    queue[tail] = tokens[j]
  end
  verifying = (k == 1)
end

local function body_for(t)
  return "grant_type=refresh_token&refresh_token=" .. formenc(t)
end

function request()
  if verifying then
    verifying = false
    return wrk.format("POST", path, headers, body_for(queue[head] or "x"))
  end
  if head > tail then
    starved = starved + 1
    return wrk.format("POST", path, headers, body_for("bench-starved"))
  end
  local t = queue[head]
  queue[head] = nil
  head = head + 1
  return wrk.format("POST", path, headers, body_for(t))
end

function response(status, hdrs, body)
  if status ~= 200 then
    failed = failed + 1
    return
  end
  local t = body and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if t == nil then
    missing = missing + 1
    return
  end
  refreshed = refreshed + 1
  tail = tail + 1
  queue[tail] = t
end

function done(summary, latency, reqs)
  local f, s, m, r, left = 0, 0, 0, 0, {}
  for _, th in ipairs(threads) do
    f = f + (th:get("failed") or 0)
    s = s + (th:get("starved") or 0)
    m = m + (th:get("missing") or 0)
    r = r + (th:get("refreshed") or 0)
    local q, h, t = th:get("queue"), th:get("head"), th:get("tail")
    for j = h, t do left[#left + 1] = q[j] end
  end
  io.write(string.format("failed %d\nstarved %d\nmissing %d\nrefreshed %d\nfamilies %d\n", f, s, m, r, #left))
  local out = os.getenv("BENCH_TOKENS_OUT")
  if out and out ~= "" then
    local fh = assert(io.open(out, "w"), "cannot write " .. out)
    fh:write(table.concat(left, "\n"), #left > 0 and "\n" or "")
    fh:close()
  end
end
