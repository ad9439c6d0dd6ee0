-- wrk -s bench/lua/echo_tcp.lua http://127.0.0.1:PORT/api/echo/tcp
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"message": "hello, polyloop bench"}'
