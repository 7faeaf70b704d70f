"""What a user agent says about the device, its operating system and its browser, for XDM.

Parsing is uap-core's maintained regex database (the `ua-parser` package, with its compiled
`ua-parser-rs` backend), not a table of our own: browsers, apps and devices change every
month, and uap-core is the list the industry keeps current. Results are cached by user-agent
string (ua-parser's S3-FIFO cache, which a flood of one-off agents cannot flush the hot set out
of): traffic repeats a few hundred agents, so almost every request is a cache hit. The cost per
request is measured by `bench/gateway.py` (BENCHMARKS.md: gateway ingestion).

Adobe's mobile SDKs send a user agent that names no browser, only the platform, in the shapes
their cores build (`adobe/aepsdk-core-android` DeviceInfoService.getDefaultUserAgent,
`adobe/aepsdk-core-ios` ApplicationSystemInfoService):

    Mozilla/5.0 (Linux; U; Android 13; en-US; Pixel 7 Build/TQ3A.230805.001)
    Mozilla/5.0 (iPhone; CPU OS 17_0 like Mac OS X; en_US)

uap-core reads their operating system and device; such an agent is an app (`app=True`), so no
browser name is made up for it. Unknown agents give empty fields, never errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ua_parser import Cache, CachingResolver, Domain, PartialResult, load_lazy_builtins
from ua_parser.regex import Resolver

# Distinct agents remembered; a busy site sees a few hundred, a bot farm many more (misses
# then cost one uncached parse each, see BENCHMARKS.md).
CACHE_SIZE = 4096

# Built at import (about 0.1 s), when the gateway starts, rather than on the first request.
_RESOLVER = Resolver(load_lazy_builtins())
_CACHED = CachingResolver(_RESOLVER, Cache(CACHE_SIZE))

# Only a platform in parentheses, no product tokens after it: the mobile SDKs' own agents.
_PLATFORM_ONLY = re.compile(r"^Mozilla/5\.0 \([^()]*\)$")

# XDM's browser name is the browser, not its form factor (device.type carries that), as in the
# DeviceAtlas names Adobe aligns XDM with: "Mobile Safari" is Safari on a phone.
_BROWSER_NAMES = {
    "Mobile Safari": "Safari",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
}
_BROWSER_VENDORS = {
    "Chrome": "Google", "Chromium": "Google", "Safari": "Apple", "Firefox": "Mozilla",
    "Edge": "Microsoft", "IE": "Microsoft", "Opera": "Opera", "Samsung Internet": "Samsung",
}
_OS_VENDORS = {
    "iOS": "Apple", "iPadOS": "Apple", "Mac OS X": "Apple", "Windows": "Microsoft",
    "Android": "Google", "Chrome OS": "Google",
}
_DESKTOP_SYSTEMS = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS", "FreeBSD",
                    "OpenBSD", "NetBSD", "Solaris"}
_TABLET_BRANDS = {"Generic_Android_Tablet", "Generic Tablet"}
_PHONE_BRANDS = {"Generic Smartphone", "Generic Feature Phone"}


@dataclass(frozen=True)
class UserAgent:
    browser: str = ""
    browser_version: str = ""
    browser_vendor: str = ""
    os: str = ""
    os_version: str = ""
    os_vendor: str = ""
    device_type: str = ""  # XDM device.type: mobile, tablet, desktop; empty when unknown
    manufacturer: str = ""
    model: str = ""
    bot: bool = False
    app: bool = False  # an app's own agent (the mobile SDKs'): no browser


def parse(agent: str) -> UserAgent:
    """The cached parse every request uses."""
    return _describe(agent, _CACHED(agent, Domain.ALL)) if agent else UserAgent()


def parse_uncached(agent: str) -> UserAgent:
    """The same without the cache: what a never-seen agent costs (the benchmark's other figure)."""
    return _describe(agent, _RESOLVER(agent, Domain.ALL)) if agent else UserAgent()


def _version(*parts: str | None) -> str:
    out: list[str] = []
    for part in parts:
        if part is None:
            break
        out.append(part)
    return ".".join(out)


def _describe(agent: str, result: PartialResult) -> UserAgent:
    ua, os, device = result.user_agent, result.os, result.device
    bot = device is not None and device.family == "Spider"
    # Crawlers write `Mozilla/5.0 (compatible; …bot…)`: platform-only too, but no platform.
    app = bool(_PLATFORM_ONLY.match(agent)) and not bot and os is not None and os.family != "Other"
    browser = version = ""
    if ua is not None and ua.family != "Other" and not app:
        browser = _BROWSER_NAMES.get(ua.family, ua.family)
        version = _version(ua.major, ua.minor, ua.patch, ua.patch_minor)
    os_name = os_version = ""
    if os is not None and os.family != "Other":
        os_name, os_version = os.family, _version(os.major, os.minor, os.patch, os.patch_minor)
    brand = device.brand if device is not None and device.brand else ""
    model = device.model if device is not None and device.model else ""
    manufacturer = "" if brand.startswith("Generic") or brand == "Spider" else brand
    if bot or model == "Desktop":  # uap-core's placeholder model for crawlers
        model = ""
    return UserAgent(
        browser=browser, browser_version=version, browser_vendor=_BROWSER_VENDORS.get(browser, ""),
        os=os_name, os_version=os_version, os_vendor=_OS_VENDORS.get(os_name, ""),
        device_type="" if bot else _device_type(agent, app, os_name, brand, model),
        manufacturer=manufacturer, model=model, bot=bot, app=app,
    )


def _device_type(agent: str, app: bool, os_name: str, brand: str, model: str) -> str:
    """XDM `device.type` from what the agent shows. Browsers on Android tablets leave out
    "Mobile" (Chrome's convention); an app's agent follows no such rule, so for an Android app
    the type stays unknown (the SDK's Lifecycle extension sends its own)."""
    if model.startswith("iPad") or brand in _TABLET_BRANDS or "Tablet" in agent:
        return "tablet"
    if model.startswith(("iPhone", "iPod")) or brand in _PHONE_BRANDS or "Mobi" in agent:
        return "mobile"
    if os_name == "Android":
        return "" if app else "tablet"
    if os_name in _DESKTOP_SYSTEMS:
        return "desktop"
    return ""
