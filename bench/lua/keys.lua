-- wrk script: each request presents a random API key from a file (verification-cache misses).
--
--   BENCH_TOKENS=keys.txt BENCH_PATH=/v1/user wrk -t1 -c32 -d10s -s bench/lua/keys.lua https://HOST:PORT
--
-- With BENCH_IN_ORDER=N it presents the keys in the file's order instead, from the N+1st on
-- (wrapping around; one thread, -t1): runs one after another, each starting where the one
-- before stopped, meet every key.
--
-- Counted and printed by done(): `failed N` — answers that were not 200.
local keys, paths, in_order, sent = {}, nil, false, 0

function setup(thread)
  threads = threads or {}
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_TOKENS"), "r"), "cannot open BENCH_TOKENS")
  for line in f:lines() do
    if line ~= "" then keys[#keys + 1] = line end
  end
  f:close()
  assert(#keys > 0, "BENCH_TOKENS holds no keys")
  paths = os.getenv("BENCH_PATH") or "/v1/user"
  local from = os.getenv("BENCH_IN_ORDER")
  if from and from ~= "" then
    in_order, sent = true, tonumber(from) % #keys
  end
  math.randomseed(os.time())
  failed = 0
end

function request()
  local k
  if in_order then
    sent = sent % #keys + 1
    k = keys[sent]
  else
    k = keys[math.random(#keys)]
  end
  return wrk.format("GET", paths, { ["Authorization"] = "Bearer " .. k })
end

function response(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("failed") or 0) end
  print("failed " .. total)
end
