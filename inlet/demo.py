"""`inlet demo`: realistic traffic through the real gateway, to watch profiles being built.

People browse anonymously (the Edge endpoint mints a device ECID per browser), log in (the
login event stitches ECID to email, and CRMID for members), buy on the web, in the app (an
app-held ECID) and in stores (server-side streaming with the CRMID); their CRM records stream
in and get upserted. A few tablets are shared by two members (the shared-device rule must keep
the people apart), and some events carry junk identities (`null`, test emails) that must link
nothing. Some shoppers buy for their company: four business accounts stream in, and those
people's CRM records name their account (`b2b.accountKey`). The demo also defines a computed
attribute, `purchases30d`, through the API (once; an existing one is left as it is).
Everything but the clock is deterministic for a given `--seed`, including event ids,
so running it twice with the same seed stores the same events once.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Katherine", "Linus",
         "Margaret", "Niklaus", "Radia", "Tim", "Sophie", "Ken", "Leslie", "Guido", "Hedy", "Dennis"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Johnson", "Torvalds",
        "Hamilton", "Wirth", "Perlman", "Berners-Lee", "Wilson", "Thompson", "Lamport", "van Rossum", "Lamarr", "Ritchie"]
PAGES = ["home", "shoes", "jackets", "sale", "new-in", "bags", "checkout", "account"]
PRODUCTS = [("SKU-100", "Trail shoe", 89.0), ("SKU-200", "Rain jacket", 129.0), ("SKU-300", "Tote bag", 39.5),
            ("SKU-400", "Wool socks", 12.0), ("SKU-500", "Cap", 19.9)]
# (account key, name, industry, annual revenue in EUR, employees)
ACCOUNTS = [("acme@demo.crm", "Acme Outfitters", "Retail", 48_000_000, 310),
            ("globex@demo.crm", "Globex Logistics", "Transportation", 125_000_000, 1_200),
            ("initech@demo.crm", "Initech", "Software", 9_500_000, 85),
            ("umbrella@demo.crm", "Umbrella Clinics", "Healthcare", 73_000_000, 640)]
PURCHASES_30D = {"name": "purchases30d", "description": "Spend over the last 30 days, all channels", "function": "SUM",
                 "field": "commerce.order.priceTotal", "filter": {"eventType": ["commerce.purchases"]},
                 "duration": {"count": 30, "unit": "DAYS"}}


@dataclass
class Person:
    name: str
    email: str
    crmid: str | None
    app_ecid: str
    browser: dict[str, str] = field(default_factory=dict)  # the kndctr entries the edge handed out


class Demo:
    def __init__(self, url: str, token: str, seed: int, org: str, datastream: str, connection: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.rng = random.Random(seed)
        self.org = org
        self.datastream = datastream
        self.connection = connection
        self.sent: dict[str, int] = {}
        self.seq = 0

    def _id(self) -> str:
        self.seq += 1
        return f"demo-{self.rng.getrandbits(48):012x}-{self.seq}"

    def _post(self, path: str, body: Any, headers: dict[str, str] | None = None, method: str = "POST") -> Any:
        request = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode(),
                                         method=method, headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{path}: {exc.code} {exc.read()[:300]!r}") from None
        return json.loads(raw) if raw else {}

    def _count(self, kind: str) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1

    def web(self, person: Person, xdm: dict[str, Any], kind: str, user_agent: str | None = None) -> None:
        entries = [{"key": k, "value": v} for k, v in person.browser.items()]
        xdm = {"_id": self._id(), **xdm}
        answer = self._post(f"/ee/v1/interact?configId={self.datastream}&requestId={self._id()}",
                            {"events": [{"xdm": xdm}], "meta": {"state": {"domain": "", "cookiesEnabled": True, "entries": entries}}},
                            {"user-agent": user_agent or "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"})
        for handle in answer.get("handle", []):
            if handle["type"] == "state:store":
                for entry in handle["payload"]:
                    person.browser[entry["key"]] = entry["value"]
        self._count(kind)

    def app(self, person: Person, xdm: dict[str, Any], kind: str) -> None:
        identity_map = {"ECID": [{"id": person.app_ecid, "primary": True}],
                        "Email": [{"id": person.email, "authenticatedState": "authenticated"}]}
        self._post(f"/ee/v1/interact?configId={self.datastream}",
                   {"events": [{"xdm": {"_id": self._id(), "identityMap": identity_map, "environment": {"type": "application"}, **xdm}}]},
                   {"user-agent": "ShopApp/3.1 (iPhone; iOS 17.4)"})
        self._count(kind)

    def stream(self, dataset: str, xdm: dict[str, Any], kind: str, operation: str | None = None) -> None:
        # The default datasets' schemas (docs/schemas.md): a message names its dataset's schema.
        schema = "https://ns.adobe.com/demo/schemas/" + {"demo-profiles": "profile", "demo-accounts": "account"}.get(
            dataset, "event")
        header: dict[str, Any] = {"schemaRef": {"id": schema}, "imsOrgId": self.org,
                                  "datasetId": dataset, "source": {"name": "demo"}}
        if operation:
            header["operations"] = {"data": operation}
        self._post(f"/collection/{self.connection}", {"header": header, "body": {"xdmEntity": xdm}})
        self._count(kind)

    def define_computed_attribute(self) -> None:
        auth = {"authorization": f"Bearer {self.token}"}
        defined = self._post("/data/core/ca/attributes", None, auth, method="GET")["computedAttributes"]
        if all(d["name"] != PURCHASES_30D["name"] for d in defined):
            self._post("/data/core/ca/attributes", PURCHASES_30D, auth)
            self._count("computed attribute definitions")

    def accounts(self) -> None:
        for key, name, industry, revenue, employees in ACCOUNTS:
            self.stream("demo-accounts", {"accountKey": {"sourceKey": key, "sourceType": "demo", "sourceID": key.split("@")[0]},
                                          "accountName": name, "accountOrganization": {
                                              "industry": industry, "numberOfEmployees": employees,
                                              "annualRevenue": {"amount": revenue, "currencyCode": "EUR"}}}, "account records")

    def person_ids(self, person: Person) -> dict[str, Any]:
        ids: dict[str, Any] = {"Email": [{"id": person.email, "authenticatedState": "authenticated", "primary": person.crmid is None}]}
        if person.crmid:
            ids["CRMID"] = [{"id": person.crmid, "authenticatedState": "authenticated", "primary": True}]
        return ids

    @staticmethod
    def company(index: int) -> dict[str, Any]:
        """Every third shopper (the first included) buys for one of the business accounts."""
        if index % 3:
            return {}
        return {"b2b": {"accountKey": {"sourceKey": ACCOUNTS[index // 3 % len(ACCOUNTS)][0]}}}

    def when(self, days_ago: float) -> str:
        moment = datetime.now(timezone.utc) - timedelta(days=days_ago)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def purchase(self, days_ago: float) -> dict[str, Any]:
        sku, name, price = self.rng.choice(PRODUCTS)
        quantity = self.rng.randint(1, 3)
        return {"eventType": "commerce.purchases", "timestamp": self.when(days_ago),
                "commerce": {"purchases": {"value": 1}, "order": {"priceTotal": round(price * quantity, 2), "currencyCode": "EUR",
                                                                 "purchaseID": f"ORD-{self.rng.randrange(10**6):06d}"}},
                "productListItems": [{"SKU": sku, "name": name, "quantity": quantity, "priceTotal": round(price * quantity, 2)}]}

    def run(self, people: int, progress: bool = True) -> dict[str, int]:
        crowd = []
        for i in range(people):
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            crowd.append(Person(name=f"{first} {last}", email=f"{first}.{last}{i}@shop.example".lower().replace(" ", ""),
                                crmid=f"CRM{100000 + i}" if self.rng.random() < 0.7 else None,
                                app_ecid=f"{self.rng.randrange(10**37, 10**38)}"))
        members = [p for p in crowd if p.crmid]
        self.define_computed_attribute()
        self.accounts()
        for index, person in enumerate(crowd):
            for _ in range(self.rng.randint(2, 5)):  # anonymous browsing
                page = self.rng.choice(PAGES)
                self.web(person, {"eventType": "web.webpagedetails.pageViews", "timestamp": self.when(self.rng.uniform(5, 40)),
                                  "web": {"webPageDetails": {"URL": f"https://shop.example/{page}", "name": page, "pageViews": {"value": 1}}}},
                         "anonymous page views")
            self.web(person, {"eventType": "userAccount.login", "timestamp": self.when(self.rng.uniform(1, 5)),
                              "identityMap": self.person_ids(person)}, "logins (stitch ECID)")
            self.stream("demo-profiles", {"identityMap": self.person_ids(person),
                                          "person": {"name": {"firstName": person.name.split()[0], "lastName": person.name.split(" ", 1)[1]}},
                                          "personalEmail": {"address": person.email},
                                          "loyalty": {"tier": self.rng.choice(["bronze", "silver", "gold"])},
                                          **self.company(index)}, "CRM records")
            if self.rng.random() < 0.5:
                self.stream("demo-profiles", {"identityMap": self.person_ids(person),
                                              "loyalty": {"points": self.rng.randrange(100, 5000)}}, "CRM upserts", operation="merge")
            for _ in range(self.rng.randint(0, 2)):
                self.web(person, {**self.purchase(self.rng.uniform(0, 45)), "identityMap": self.person_ids(person)}, "web purchases")
            if self.rng.random() < 0.5:
                self.app(person, self.purchase(self.rng.uniform(0, 20)), "app purchases")
            if person.crmid and self.rng.random() < 0.4:
                self.stream("demo-events", {"_id": self._id(), "identityMap": {"CRMID": [{"id": person.crmid, "primary": True}]},
                                            "channel": {"_type": "https://ns.adobe.com/xdm/channel-types/offline"},
                                            **self.purchase(self.rng.uniform(0, 60))}, "in-store purchases (server)")
            if self.rng.random() < 0.15:  # junk identities the guardrails must ignore
                self.web(person, {"eventType": "web.formFilledOut", "identityMap": {"Email": [{"id": self.rng.choice(["null", "test@test.com", "0"])}]}},
                         "junk identities")
            if progress:
                done = index + 1
                bar = "#" * (30 * done // people)
                print(f"\r  [{bar:<30}] {done}/{people} people", end="", file=sys.stderr, flush=True)
        for one, other in zip(members[0:4:2], members[1:4:2]):  # shared tablets
            tablet = Person(name="tablet", email="", crmid=None, app_ecid="")
            for member in (one, other):
                self.web(tablet, {"eventType": "userAccount.login", "identityMap": self.person_ids(member)}, "shared-device logins")
        if progress:
            print(file=sys.stderr)
        return self.sent


def main(argv: list[str], default_url: str, token: str, org: str) -> int:
    parser = argparse.ArgumentParser(prog="inlet demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=default_url)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--datastream", default="demo")
    parser.add_argument("--connection", default="demo")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    demo = Demo(args.url, token, args.seed, org, args.datastream, args.connection)
    try:
        sent = demo.run(args.people, progress=not args.quiet)
    except (OSError, RuntimeError) as exc:
        print(f"inlet demo: {exc}", file=sys.stderr)
        return 1
    print(f"inlet demo: sent {sum(sent.values())} messages for {args.people} people in {time.monotonic() - started:.1f}s (seed {args.seed})")
    for kind, count in sorted(sent.items()):
        print(f"  {count:6d}  {kind}")
    example = next((p for p in demo_people(args.seed, args.people)), None)
    if example:
        print(f"Look one up: /ui/ → Email {example}")
    return 0


def demo_people(seed: int, people: int) -> list[str]:
    """The emails a run with this seed uses (the same draws as `Demo.run`)."""
    rng = random.Random(seed)
    out = []
    for i in range(people):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        out.append(f"{first}.{last}{i}@shop.example".lower().replace(" ", ""))
        rng.random(), rng.randrange(10**37, 10**38)
    return out
