-- wrk script: RFC 7662 token introspection, generic over dotgit and the oidc-provider peer.
--
--   BENCH_TOKENS=access_tokens.txt BENCH_CLIENT_ID=id BENCH_CLIENT_SECRET=secret \
--   BENCH_PATH=/oauth/introspect wrk -t1 -c32 -d10s -s bench/lua/introspect.lua https://127.0.0.1:PORT
--
-- Each request: POST BENCH_PATH, HTTP Basic client auth, form body
-- token=<t>&token_type_hint=access_token, the tokens taken round-robin. Every request is built
-- once in init(), so request() is a table lookup. Answers whose body lacks "active":true
-- (inactive tokens, errors, non-200s) are counted; done() prints `inactive N` and
-- `introspected N` (responses seen) so a caller can refuse a run with inactive > 0.

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

local requests, n, i = {}, 0, 0
inactive = 0
introspected = 0

function init(args)
  local tokens = read_lines(need("BENCH_TOKENS"))
  local path = need("BENCH_PATH")
  local headers = {
    ["Authorization"] = "Basic " .. base64(need("BENCH_CLIENT_ID") .. ":" .. need("BENCH_CLIENT_SECRET")),
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  for k, t in ipairs(tokens) do
    requests[k] = wrk.format("POST", path, headers, "token=" .. formenc(t) .. "&token_type_hint=access_token")
  end
  n = #requests
  -- with -tN, each thread starts at a different place in the list
  i = (((thread_index or 1) - 1) * 101) % n
end

function request()
  i = i % n + 1
  return requests[i]
end

function response(status, headers, body)
  introspected = introspected + 1
  if status ~= 200 or not (body and body:find('"active":true', 1, true)) then
    inactive = inactive + 1
  end
end

function done(summary, latency, reqs)
  local bad, seen = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("inactive") or 0)
    seen = seen + (t:get("introspected") or 0)
  end
  io.write(string.format("inactive %d\nintrospected %d\n", bad, seen))
end
