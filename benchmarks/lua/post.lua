-- Every request a POST; the body, if given after --, is JSON.
wrk.method = "POST"
wrk.body = ""

function init(args)
   if args[1] then
      wrk.body = args[1]
      wrk.headers["Content-Type"] = "application/json"
   end
end
