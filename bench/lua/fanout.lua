-- wrk -s bench/lua/fanout.lua http://127.0.0.1:PORT/api/fanout
-- one message over TCP and UDP plus two names of the stack's own zone, at once
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"message": "hello, polyloop bench", '
  .. '"names": ["www.polyloop.test", "host-1.polyloop.test"]}'
