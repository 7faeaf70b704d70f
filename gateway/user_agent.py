"""A small user-agent parser: browser, operating system and device type for XDM.

Enough for the common families (about everything a web analytics report groups by), without a
dependency or a regex database. Unknown agents give empty fields, never errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BROWSERS = [  # order matters: Edge and Opera also say Chrome; Chrome also says Safari
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/([\d.]+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/([\d.]+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/([\d.]+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/([\d.]+)")),
    ("Chrome", re.compile(r"(?:HeadlessChrome|Chrome|CriOS)/([\d.]+)")),
    ("Safari", re.compile(r"Version/([\d.]+).*Safari/")),
]
_SYSTEMS = [
    ("iOS", re.compile(r"(?:iPhone|iPad|iPod).*? OS ([\d_]+)")),
    ("Android", re.compile(r"Android ([\d.]+)")),
    ("Windows", re.compile(r"Windows NT ([\d.]+)")),
    ("macOS", re.compile(r"Mac OS X ([\d_.]+)")),
    ("ChromeOS", re.compile(r"CrOS \S+ ([\d.]+)")),
    ("Linux", re.compile(r"Linux()")),
]
_BOT = re.compile(r"bot|crawl|spider|slurp|headless", re.I)


@dataclass(frozen=True)
class UserAgent:
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device_type: str = ""  # XDM device.type: mobile, tablet, desktop
    bot: bool = False


def parse(agent: str) -> UserAgent:
    if not agent:
        return UserAgent()
    browser = version = os_name = os_version = ""
    for name, pattern in _BROWSERS:
        match = pattern.search(agent)
        if match:
            browser, version = name, match.group(1)
            break
    for name, pattern in _SYSTEMS:
        match = pattern.search(agent)
        if match:
            os_name, os_version = name, match.group(1).replace("_", ".")
            break
    if "iPad" in agent or ("Android" in agent and "Mobile" not in agent) or "Tablet" in agent:
        device = "tablet"
    elif "Mobi" in agent or "iPhone" in agent or "Android" in agent:
        device = "mobile"
    elif os_name:
        device = "desktop"
    else:
        device = ""
    return UserAgent(browser, version, os_name, os_version, device, bool(_BOT.search(agent)))
