-- wrk -s bench/lua/resolve.lua http://127.0.0.1:PORT/resolve   (or the front's /api/resolve)
-- one name of the stack's zone: after the first request the resolver answers it from cache
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"names": ["www.polyloop.test"]}'
