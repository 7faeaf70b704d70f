"""Render nginx/inlet.conf.template with your hosts, ports, paths and certificate.

    python nginx/render.py --server-name edge.shop.example --gateway 10.0.0.5:8080 \\
        --gateway 10.0.0.6:8080 --cert /etc/ssl/edge.crt --key /etc/ssl/edge.key \\
        --tag-root /srv/inlet/tag --snippets /etc/nginx/snippets > /etc/nginx/conf.d/inlet.conf

Every placeholder is `{{NAME}}`; nginx's own `$variables` are left alone. A placeholder left
unfilled is an error, never a broken config.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Debian loads a module package's module through a symlink here.
BROTLI_ENABLED = "/etc/nginx/modules-enabled/*brotli*"


def render(values: dict[str, str]) -> str:
    text = (HERE / "inlet.conf.template").read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{([A-Z_]+)\}\}", text)
    if left:
        raise ValueError(f"unfilled placeholders in the template: {sorted(set(left))}")
    return text


def tag_version() -> str:
    """The version in tag/package.json: the URL `/tag/<version>/inlet.min.js` serves it."""
    try:
        return str(json.loads((ROOT / "tag" / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "0.1.0"


def brotli_available(nginx: str = "nginx") -> bool:
    """ngx_brotli is loaded (Debian's module package) or compiled in."""
    if glob.glob(BROTLI_ENABLED):
        return True
    binary = shutil.which(nginx) or "/usr/sbin/nginx"
    try:
        built = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10, check=False).stderr
    except (OSError, subprocess.SubprocessError):
        return False
    return "brotli" in built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--server-name", default="_")
    parser.add_argument("--listen", default="443", help="port or address:port")
    parser.add_argument("--gateway", action="append", default=[], help="host:port of a gateway (repeat)")
    parser.add_argument("--max-fails", type=int, default=3, help="failures before a gateway is skipped")
    parser.add_argument("--fail-timeout", default="10s", help="window for max-fails, and how long it is skipped")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tag-root", default="/srv/inlet/tag", help="holds <version>/inlet.min.js")
    parser.add_argument("--tag-version", default=tag_version(), help="the version /tag/inlet.min.js serves")
    parser.add_argument("--snippets", default=str(HERE / "snippets"), help="directory of the inlet-*.conf snippets")
    parser.add_argument("--edge-rate", type=int, default=50, help="requests/s per client address on /ee/")
    parser.add_argument("--edge-burst", type=int, default=100, help="requests over the rate allowed at once")
    parser.add_argument("--brotli", choices=("auto", "on", "off"), default="auto",
                        help="include snippets/inlet-brotli.conf; auto: when ngx_brotli is loaded")
    args = parser.parse_args(argv)
    gateways = args.gateway or ["127.0.0.1:8080"]
    servers = "\n    ".join(f"server {g} max_fails={args.max_fails} fail_timeout={args.fail_timeout};" for g in gateways)
    brotli = args.brotli == "on" or (args.brotli == "auto" and brotli_available())
    sys.stdout.write(render({
        "SERVER_NAME": args.server_name, "LISTEN": args.listen, "UPSTREAM_SERVERS": servers,
        "CERT": args.cert, "KEY": args.key, "TAG_ROOT": args.tag_root.rstrip("/"), "TAG_VERSION": args.tag_version,
        "SNIPPETS": args.snippets.rstrip("/"), "EDGE_RATE": str(args.edge_rate), "EDGE_BURST": str(args.edge_burst),
        "BROTLI": f"include {args.snippets.rstrip('/')}/inlet-brotli.conf;" if brotli
        else "# brotli: not rendered (no ngx_brotli found); see nginx/snippets/inlet-brotli.conf",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
