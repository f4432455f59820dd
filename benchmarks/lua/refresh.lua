-- Refresh-token rotation, one cookie chain per connection: run with as many
-- threads as connections (-tN -cN).  After --: the refresh path, a file of
-- refresh tokens (one a line), N.  Thread i takes lines i, i+N, ...: the
-- first to start with, the others as spares after a refused rotation.
local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

function init(args)
   path, spares, ok, failed = args[1], {}, 0, 0
   local n = 0
   for line in io.lines(args[2]) do
      if n % tonumber(args[3]) == index then table.insert(spares, line) end
      n = n + 1
   end
   token = table.remove(spares, 1)
end

function request()
   return wrk.format("POST", path, { Cookie = "refresh_token=" .. token }, "")
end

function response(status, headers, body)
   local new = (headers["Set-Cookie"] or ""):match("refresh_token=([^;]+)")
   if status == 200 and new then
      token, ok = new, ok + 1
   else
      token, failed = table.remove(spares, 1) or token, failed + 1
   end
end

function done()
   local all_ok, all_failed = 0, 0
   for _, thread in ipairs(threads) do
      all_ok, all_failed = all_ok + thread:get("ok"), all_failed + thread:get("failed")
   end
   io.write(string.format("ROTATIONS ok=%d failed=%d\n", all_ok, all_failed))
end
