-- chat.lua plus a done() callback printing the 95th percentile latency (wrk --latency prints 50,
-- 75, 90 and 99 only). done() runs once at the end, so the request fast path is kept.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "chat.lua")

function done(summary, latency, requests)
  io.write(string.format("p95_ms %.3f\n", latency:percentile(95) / 1000))
end
