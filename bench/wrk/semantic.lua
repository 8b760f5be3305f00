-- wrk script for the semantic cache's hit path (bench/semantic.sh): model "semantic", temperature
-- 0, the user turn of hit.json with 0-999 trailing spaces. Each request is a different exact key
-- (so the exact cache misses, and two requests in flight never coalesce) whose turn embeds to the
-- same vector (the tokenizer drops the spaces): after one seeding request every request is a
-- semantic hit, paying for one embedding and one search.
local n = 0
local head = '{"model":"semantic","temperature":0,"max_tokens":32,"messages":[{"role":"system",'
  .. '"content":"You are a terse assistant."},{"role":"user","content":"Say hello to the benchmark.'
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench"}

request = function()
  n = n + 1
  return wrk.format("POST", nil, headers, head .. string.rep(" ", n % 1000) .. '"}]}')
end
