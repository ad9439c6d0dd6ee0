"""DnsUser: dnspython queries straight to the Twisted Names server, an A/AAAA/NXDOMAIN mix.

Only names of the stack's own zone ``polyloop.test``. Run alone:
``locust -f loadtest --headless -u 10 -r 10 -t 10s DnsUser`` (or ``--tags dns``).
"""

from locust import tag, task

from loadtest._clients import expect_address, expect_nxdomain
from loadtest._payloads import WWW, WWW_ADDRESS, host_name, host_name_v6, missing_name
from loadtest._users import DnsQueryUser


@tag("dns")
class DnsUser(DnsQueryUser):
    @task(6)
    def a_host(self) -> None:
        name, address = host_name()
        self.client.query(name, "A", "A host-N", expect_address(address))

    @task(2)
    def a_www(self) -> None:
        self.client.query(WWW, "A", "A www", expect_address(WWW_ADDRESS))

    @task(2)
    def aaaa_host(self) -> None:
        name, address = host_name_v6()
        self.client.query(name, "AAAA", "AAAA host-N", expect_address(address))

    @task(2)
    def nxdomain(self) -> None:
        self.client.query(missing_name(), "A", "A nope-* (NXDOMAIN)", expect_nxdomain)

    @task(1)
    def a_www_over_tcp(self) -> None:
        self.client.query(WWW, "A", "A www (TCP)", expect_address(WWW_ADDRESS), tcp=True)
