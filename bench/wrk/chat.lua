-- wrk script: POST one chat completion body, the same on every request. No request() or
-- response() callbacks, so wrk keeps its fast path (the request is built once).
--
-- BENCH_MODE picks the body, a JSON file next to this script:
--   miss  miss.json: model "miss", temperature 1. Not cacheable (and the "miss" group has cache
--         mode "off"), so every request goes upstream.
--   hit   hit.json: model "hit", temperature 0. Cacheable and identical every time: after one
--         warm-up request every request is a memory-cache hit.
-- Direct-to-nginx runs use the miss body; nginx ignores it.
--
-- BENCH_API_KEY (default "bench") is sent as `Authorization: Bearer ...`: an Interlock key
-- (`interlock keys create`) for a gateway with security.keys; any value for an open one.
--
--   BENCH_MODE=hit wrk -t1 -c64 -d10s --latency -s bench/wrk/chat.lua \
--       http://127.0.0.1:14000/v1/chat/completions

local mode = os.getenv("BENCH_MODE") or "miss"
if mode ~= "miss" and mode ~= "hit" then
  io.stderr:write("chat.lua: BENCH_MODE must be 'miss' or 'hit', not '" .. mode .. "'\n")
  os.exit(2)
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local file = assert(io.open(here .. mode .. ".json", "rb"))
local body = file:read("*a"):gsub("%s+$", "")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key == nil or key == "" then key = "bench" end
wrk.headers["Authorization"] = "Bearer " .. key
