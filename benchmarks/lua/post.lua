-- Every request a POST with an empty body (headers come from -H).
wrk.method = "POST"
wrk.body = ""
