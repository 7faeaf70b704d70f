"""Render nginx/inlet.conf.template: `python nginx/render.py --help`.

    python nginx/render.py --server-name edge.shop.example --gateway 10.0.0.5:8080 \\
        --gateway 10.0.0.6:8080 --cert /etc/ssl/edge.crt --key /etc/ssl/edge.key \\
        --tag-dir /srv/inlet/tag/dist > /etc/nginx/conf.d/inlet.conf
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def render(values: dict[str, str]) -> str:
    text = (HERE / "inlet.conf.template").read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError("unfilled placeholder in the template")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server-name", default="_")
    parser.add_argument("--listen", default="443")
    parser.add_argument("--gateway", action="append", default=[], help="host:port of a gateway (repeat)")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tag-dir", default=str(HERE.parent / "tag" / "dist"))
    parser.add_argument("--snippets", default=str(HERE / "snippets"))
    parser.add_argument("--edge-rate", type=int, default=50, help="requests/s per client address on /ee/")
    parser.add_argument("--edge-burst", type=int, default=100)
    args = parser.parse_args(argv)
    gateways = args.gateway or ["127.0.0.1:8080"]
    servers = "\n    ".join(f"server {g} max_fails=3 fail_timeout=10s;" for g in gateways)
    sys.stdout.write(render({
        "SERVER_NAME": args.server_name, "LISTEN": args.listen, "UPSTREAM_SERVERS": servers,
        "CERT": args.cert, "KEY": args.key, "TAG_DIR": args.tag_dir, "SNIPPETS": args.snippets,
        "EDGE_RATE": str(args.edge_rate), "EDGE_BURST": str(args.edge_burst),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
