-- Refresh-token rotation under wrk, one cookie chain per connection.
--
-- Run with as many threads as connections (-tN -cN): each wrk thread then
-- drives exactly one connection, and keeps that connection's refresh cookie
-- in its own Lua state.  Arguments (after --):
--   1. path of the refresh route (POST)
--   2. file of refresh tokens, one per line
--   3. number of threads
-- Thread i starts with the token on line i+1 and keeps lines i+1+k*N as
-- spares: a refused refresh (which clears the cookie) moves on to a spare,
-- so one failure does not end the thread's run.
local threads = {}
local next_index = 0

function setup(thread)
   thread:set("index", next_index)
   next_index = next_index + 1
   table.insert(threads, thread)
end

function init(args)
   path = args[1]
   local stride = tonumber(args[3])
   spares = {}
   local n = 0
   for line in io.lines(args[2]) do
      if n % stride == index and #line > 0 then
         table.insert(spares, line)
      end
      n = n + 1
   end
   token = table.remove(spares, 1)
   ok = 0
   failed = 0
end

function request()
   return wrk.format("POST", path, { ["Cookie"] = "refresh_token=" .. token }, "")
end

function response(status, headers, body)
   if status == 200 then
      local cookie = headers["Set-Cookie"] or headers["set-cookie"]
      local new = cookie and cookie:match("refresh_token=([^;]+)")
      if new then
         token = new
         ok = ok + 1
         return
      end
   end
   failed = failed + 1
   if #spares > 0 then
      token = table.remove(spares, 1)
   end
end

function done(summary, latency, requests)
   local total_ok, total_failed = 0, 0
   for _, thread in ipairs(threads) do
      total_ok = total_ok + thread:get("ok")
      total_failed = total_failed + thread:get("failed")
   end
   io.write(string.format("ROTATIONS ok=%d failed=%d\n", total_ok, total_failed))
end
