"""DnsUser: dnspython queries straight to the Twisted Names server, an A/AAAA/NXDOMAIN mix.

Only names of the stack's own zone ``polyloop.test``. Run alone:
``locust -f loadtest --headless -u 10 -r 10 -t 10s DnsUser`` (or ``--tags dns``).
"""

from locust import tag, task

from loadtest._clients import expect_address, expect_nxdomain, expect_prefix
from loadtest._payloads import AAAA_PREFIX, WWW, WWW_ADDRESS, host_name, missing_name
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
    def aaaa_www(self) -> None:
        self.client.query(WWW, "AAAA", "AAAA www", expect_prefix(AAAA_PREFIX))

    @task(2)
    def nxdomain(self) -> None:
        self.client.query(missing_name(), "A", "A nope-* (NXDOMAIN)", expect_nxdomain)

    @task(1)
    def a_www_over_tcp(self) -> None:
        self.client.query(WWW, "A", "A www (TCP)", expect_address(WWW_ADDRESS), tcp=True)
