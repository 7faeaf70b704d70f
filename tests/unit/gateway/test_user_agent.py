"""Device and environment enrichment from real user agents: browsers and Adobe's mobile SDKs.

The mobile SDK agents are built the way the SDK cores build them:
- Android: `adobe/aepsdk-core-android`, code/core/src/phone/java/com/adobe/marketing/mobile/
  services/DeviceInfoService.java, getDefaultUserAgent():
  `Mozilla/5.0 (Linux; U; <OS name> <OS version>; <locale>; <Build.MODEL> Build/<Build.ID>)`
- iOS: `adobe/aepsdk-core-ios`, AEPServices/Sources/ApplicationSystemInfoService.swift, userAgent:
  `Mozilla/5.0 (<UIDevice model>; CPU OS <version with _> like Mac OS X; <locale identifier>)`
Each core sends it as the `User-Agent` header of every request, Edge requests included
(aepsdk-core-android services/NetworkService.java getDefaultHeaders; aepsdk-core-ios
AEPServices/Sources/network/NetworkRequest.swift default headers).
The XDM paths are those of Adobe's datastream "device lookup" option
(https://experienceleague.adobe.com/en/docs/experience-platform/datastreams/configure).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway import enrich, user_agent

ANDROID_SDK = "Mozilla/5.0 (Linux; U; Android 13; en-US; Pixel 7 Build/TQ3A.230805.001)"
ANDROID_SDK_TABLET = "Mozilla/5.0 (Linux; U; Android 14; de-DE; SM-X710 Build/UP1A.231005.007)"
IOS_SDK = "Mozilla/5.0 (iPhone; CPU OS 17_0 like Mac OS X; en_US)"
IPADOS_SDK = "Mozilla/5.0 (iPad; CPU OS 16_4_1 like Mac OS X; fr_FR)"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.6099.43 Mobile Safari/537.36")
SAMSUNG_INTERNET = ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36")
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0"
EDGE_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        # agent: (browser, version, vendor, os, os version, device type, manufacturer, model, app)
        (ANDROID_SDK, ("", "", "", "Android", "13", "", "Google", "Pixel 7", True)),
        (ANDROID_SDK_TABLET, ("", "", "", "Android", "14", "", "Samsung", "SM-X710", True)),
        (IOS_SDK, ("", "", "", "iOS", "17.0", "mobile", "Apple", "iPhone", True)),
        (IPADOS_SDK, ("", "", "", "iOS", "16.4.1", "tablet", "Apple", "iPad", True)),
        (SAFARI_IPHONE, ("Safari", "17.4", "Apple", "iOS", "17.4", "mobile", "Apple", "iPhone", False)),
        (CHROME_ANDROID, ("Chrome", "120.0.6099.43", "Google", "Android", "10", "mobile", "", "K", False)),
        (SAMSUNG_INTERNET, ("Samsung Internet", "23.0", "Samsung", "Android", "13", "mobile", "Samsung", "SM-S918B",
                            False)),
        (FIREFOX_MAC, ("Firefox", "121.0", "Mozilla", "Mac OS X", "10.15", "desktop", "Apple", "Mac", False)),
        (EDGE_WINDOWS, ("Edge", "120.0.2210.91", "Microsoft", "Windows", "10", "desktop", "", "", False)),
    ],
)
def test_uap_core_reads_browsers_and_the_mobile_sdks(agent: str, expected: tuple[Any, ...]) -> None:
    p = user_agent.parse(agent)
    got = (p.browser, p.browser_version, p.browser_vendor, p.os, p.os_version, p.device_type, p.manufacturer,
           p.model, p.app)
    assert got == expected
    assert user_agent.parse_uncached(agent) == p  # the cache changes the cost, never the answer


def test_crawlers_are_bots_without_a_device() -> None:
    p = user_agent.parse(GOOGLEBOT)
    assert p.bot and p.browser == "Googlebot" and p.device_type == "" and p.model == "" and p.manufacturer == ""


def test_unknown_and_empty_agents_give_empty_fields() -> None:
    assert user_agent.parse("") == user_agent.UserAgent()
    assert user_agent.parse("\x00garbage ((( ") .os == ""


def enriched(xdm: dict[str, Any], agent: str, address: str = "") -> dict[str, Any]:
    enrich.enrich(xdm, agent, user_agent.parse(agent), address)
    return xdm


def test_an_android_app_event_gets_its_device_and_operating_system() -> None:
    xdm = enriched({"eventType": "web.webpagedetails.pageViews"}, ANDROID_SDK)
    assert xdm["device"] == {"manufacturer": "Google", "model": "Pixel 7"}
    assert xdm["environment"] == {
        "browserDetails": {"userAgent": ANDROID_SDK}, "type": "application",
        "operatingSystem": "Android", "operatingSystemVersion": "13", "operatingSystemVendor": "Google",
    }


def test_an_ios_app_event_gets_its_device_and_operating_system() -> None:
    xdm = enriched({}, IOS_SDK)
    assert xdm["device"] == {"manufacturer": "Apple", "model": "iPhone", "type": "mobile"}
    environment = xdm["environment"]
    assert (environment["type"], environment["operatingSystem"], environment["operatingSystemVersion"]) == (
        "application", "iOS", "17.0")
    assert "name" not in environment["browserDetails"]  # an app is not a browser


def test_a_browser_event_gets_the_device_lookup_fields() -> None:
    xdm = enriched({"environment": {"type": "browser", "browserDetails": {"viewportWidth": 390}}}, SAFARI_IPHONE)
    assert xdm["environment"]["browserDetails"] == {
        "viewportWidth": 390, "userAgent": SAFARI_IPHONE, "name": "Safari", "version": "17.4", "vendor": "Apple"}
    assert xdm["device"] == {"manufacturer": "Apple", "model": "iPhone", "type": "mobile"}


def test_values_the_client_sent_are_never_replaced() -> None:
    """A mobile app's Lifecycle data names its device exactly ("iPhone15,2"); the agent's guess
    must not replace it, nor anything else the event carries in those fields."""
    sent: dict[str, Any] = {
        "device": {"manufacturer": "apple", "model": "iPhone15,2", "type": "mobile", "screenHeight": 2556},
        "environment": {"type": "application", "operatingSystem": "iPadOS", "operatingSystemVersion": "17.0.3",
                        "browserDetails": {"name": "MyApp"}},
    }
    xdm = enriched(sent, IOS_SDK)
    assert xdm["device"] == {"manufacturer": "apple", "model": "iPhone15,2", "type": "mobile", "screenHeight": 2556}
    assert xdm["environment"]["operatingSystem"] == "iPadOS"
    assert xdm["environment"]["operatingSystemVersion"] == "17.0.3"
    assert xdm["environment"]["operatingSystemVendor"] == "Apple"  # absent: filled
    assert xdm["environment"]["browserDetails"] == {"name": "MyApp", "userAgent": IOS_SDK}


def test_an_event_with_its_own_user_agent_is_described_from_it() -> None:
    """A server sending a browser's event (Edge Server API) carries the browser's agent in the
    event; the request's own User-Agent names the server's HTTP library."""
    xdm = enriched({"environment": {"browserDetails": {"userAgent": FIREFOX_MAC}}}, "python-httpx/0.27.0")
    assert xdm["environment"]["browserDetails"] == {
        "userAgent": FIREFOX_MAC, "name": "Firefox", "version": "121.0", "vendor": "Mozilla"}
    assert xdm["device"]["type"] == "desktop"


def test_fields_of_the_wrong_type_are_left_as_sent() -> None:
    xdm = enriched({"device": "tv", "environment": {"browserDetails": []}}, SAFARI_IPHONE, "203.0.113.7")
    assert xdm["device"] == "tv"
    assert xdm["environment"]["browserDetails"] == []
    assert xdm["environment"]["operatingSystem"] == "iOS"
    assert xdm["environment"]["ipV4"] == "203.0.113.7"
