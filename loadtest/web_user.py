"""WebUser: the aiohttp front's JSON API and its dashboard, as a browser-side client would.

Host: ``WEB_HOST``/``WEB_PORT`` (127.0.0.1:8080), or ``-H``. Run alone:
``locust -f loadtest --headless -u 10 -r 10 -t 10s WebUser`` (or ``--tags web``).
"""

from locust import tag, task

from loadtest._checks import echoed, fanned_out, judge, judge_page, resolved
from loadtest._payloads import host_names, message, missing_name
from loadtest._users import FrontUser


@tag("web")
class WebUser(FrontUser):
    @task(4)
    def echo_over_tcp(self) -> None:
        text = message(64)
        with self.client.post(
            "/api/echo/tcp", json={"message": text}, catch_response=True
        ) as response:
            judge(response, echoed(text))

    @task(4)
    def echo_over_udp(self) -> None:
        text = message(64)
        with self.client.post(
            "/api/echo/udp", json={"message": text}, catch_response=True
        ) as response:
            judge(response, echoed(text))

    @task(3)
    def resolve_names(self) -> None:
        expected = [*host_names(4), (missing_name(), None)]
        body = {"names": [name for name, _ in expected], "mode": "concurrent", "timeout": 2.0}
        with self.client.post("/api/resolve", json=body, catch_response=True) as response:
            judge(response, resolved(expected))

    @task(2)
    def fan_out(self) -> None:
        text, expected = message(32), host_names(3)
        body = {"message": text, "names": [name for name, _ in expected]}
        with self.client.post("/api/fanout", json=body, catch_response=True) as response:
            judge(response, fanned_out(text, expected))

    @task(1)
    def open_dashboard(self) -> None:
        with self.client.get("/", name="/ (dashboard)", catch_response=True) as response:
            judge_page(response)
