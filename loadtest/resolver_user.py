"""ResolverUser: HTTP/JSON straight to the gevent resolver, concurrent and sequential.

Only names of the stack's own zone. Run alone:
``locust -f loadtest --headless -u 10 -r 10 -t 10s ResolverUser`` (or ``--tags resolver``).
"""

from locust import tag, task

from loadtest._checks import all_answered, judge, resolved
from loadtest._payloads import delayed_name, host_names, missing_name
from loadtest._users import ResolverApiUser


@tag("resolver")
class ResolverUser(ResolverApiUser):
    @task(5)
    def resolve_10_concurrently(self) -> None:
        expected = [*host_names(9), (missing_name(), None)]
        body = {"names": [name for name, _ in expected], "mode": "concurrent", "timeout": 2.0}
        with self.client.post(
            self.resolve_url, json=body, name="/resolve concurrent x10", catch_response=True
        ) as response:
            judge(response, resolved(expected))

    @task(2)
    def resolve_3_sequentially(self) -> None:
        expected = host_names(3)
        body = {"names": [name for name, _ in expected], "mode": "sequential", "timeout": 2.0}
        with self.client.post(
            self.resolve_url, json=body, name="/resolve sequential x3", catch_response=True
        ) as response:
            judge(response, resolved(expected))

    @task(1)
    def resolve_a_10ms_delay(self) -> None:
        # the zone's slow names: the only "delay" the default mix uses, and a light one
        name = delayed_name(10)
        body = {"names": [name], "mode": "concurrent", "timeout": 2.0}
        with self.client.post(
            self.resolve_url, json=body, name="/resolve delay-10", catch_response=True
        ) as response:
            judge(response, all_answered([name]))

    @task(1)
    def healthz(self) -> None:
        self.client.get(self.healthz_url, name="/healthz")
