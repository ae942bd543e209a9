"""The other engine the injection guard could have used: ModSecurity v3 with the OWASP CRS.

Same corpora as ``bench/injection.py`` (sqlmap, XSStrike, the command list, the benign values),
each value sent as a query parameter (``GET /?q=VALUE``) to nginx with the ModSecurity module
and the CRS at its defaults (paranoia level 1, anomaly threshold 5, ``SecRuleEngine On``), in
front of a local ``return 200``. A 403 counts as detected (for an attack) or as a false positive
(for a benign value). Beside it, in the same run, bastion's detector on the same values, and
the time per request through nginx with and without ModSecurity (sequential requests on one
keep-alive connection, so the difference is ModSecurity's work per request).

Needs root the first time: installs Debian's ``libnginx-mod-http-modsecurity`` and
``modsecurity-crs`` with apt-get when missing. Everything else lives in a temporary directory
(nginx runs with its own ``-p``/``-c``) and is stopped at the end.

    PYTHONPATH=src .venv/bin/python bench/injection_crs.py            # every 4th value (~40 s)
    PYTHONPATH=src .venv/bin/python bench/injection_crs.py --every 1  # all values
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.validation.injection import corpora  # noqa: E402

from bastion.validation.injection.engine import Detector  # noqa: E402

MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
CRS_LOAD = Path("/usr/share/modsecurity-crs/owasp-crs.load")
RECOMMENDED = Path("/etc/nginx/modsecurity.conf")
HEADERS = {
    "Host": "localhost",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Accept": "text/html,application/json;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
}


def ensure_installed() -> None:
    if MODULE.exists() and CRS_LOAD.exists() and RECOMMENDED.exists():
        return
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "libnginx-mod-http-modsecurity", "modsecurity-crs"],
        check=True,
        timeout=600,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_conf(work: Path, upstream: int, crs: int, plain: int) -> str:
    temp = "\n".join(
        f"  {name}_temp_path {work}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
load_module {MODULE};
worker_processes 1;
error_log {work}/error.log error;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp}
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 16; }}
  server {{ listen 127.0.0.1:{upstream}; location / {{ return 200 "ok"; }} }}
  server {{
    listen 127.0.0.1:{crs};
    modsecurity on;
    modsecurity_rules_file {work}/crs.conf;
    location / {{ proxy_pass http://app; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }}
  }}
  server {{
    listen 127.0.0.1:{plain};
    location / {{ proxy_pass http://app; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }}
  }}
}}
"""


def crs_conf(work: Path) -> str:
    return f"""
Include {RECOMMENDED}
SecRuleEngine On
SecAuditEngine Off
SecStatusEngine Off
SecTmpDir {work}
SecDataDir {work}
Include /etc/modsecurity/crs/crs-setup.conf
Include /etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf
Include /usr/share/modsecurity-crs/rules/*.conf
Include /etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf
"""


def statuses(port: int, values: Sequence[str]) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    result = []
    try:
        for value in values:
            conn.request("GET", "/?q=" + quote(value, safe=""), headers=HEADERS)
            response = conn.getresponse()
            response.read()
            result.append(response.status)
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    finally:
        conn.close()
    return result


def per_request_us(port: int, values: Sequence[str]) -> float:
    start = time.perf_counter()
    statuses(port, values)
    return (time.perf_counter() - start) / len(values) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--every", type=int, default=4, help="take every Nth value of each corpus")
    args = parser.parse_args(argv)
    ensure_installed()
    work = Path(tempfile.mkdtemp(prefix="bastion-crs-"))
    upstream, crs, plain = free_port(), free_port(), free_port()
    (work / "nginx.conf").write_text(nginx_conf(work, upstream, crs, plain))
    (work / "crs.conf").write_text(crs_conf(work))
    nginx = subprocess.Popen(
        ["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
        start_new_session=True,
    )
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if statuses(crs, ["hello"]) == [200] and statuses(plain, ["hello"]) == [200]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or nginx.poll() is not None:
                raise SystemExit(f"nginx with ModSecurity did not start: {work}/error.log")
            time.sleep(0.2)
        every = Detector(("sql", "xss", "command"))
        sets = {
            "sql (sqlmap)": corpora.sql_attacks()[:: args.every],
            "xss (XSStrike)": corpora.xss_attacks()[:: args.every],
            "command (own list)": corpora.command_attacks()[:: args.every],
            "benign: assembled": corpora.benign()["values"],
            "benign: Python docs": corpora.benign_values()[len(corpora.benign()["values"]) :][
                :: args.every
            ],
        }
        print("ModSecurity 3 + OWASP CRS 3.3.4 (PL1, threshold 5) against bastion's detector;")
        print(f"values sent as ?q=...; every {args.every}th value of each corpus")
        for name, values in sets.items():
            blocked = sum(1 for status in statuses(crs, values) if status == 403)
            ours = sum(1 for value in values if every.find(value) is not None)
            what = "false positives" if name.startswith("benign") else "detected"
            print(
                f"  {name:22} {len(values):6} values  {what}: CRS {blocked / len(values):6.1%}"
                f"   bastion {ours / len(values):6.1%}"
            )
        sample = [*corpora.benign()["values"]][:200]
        rounds = [(per_request_us(plain, sample), per_request_us(crs, sample)) for _ in range(3)]
        base, with_crs = min(r[0] for r in rounds), min(r[1] for r in rounds)
        start = time.perf_counter()
        for _ in range(20):
            for value in sample:
                every.find(value)
        ours_us = (time.perf_counter() - start) / (20 * len(sample)) * 1e6
        print(
            f"  cost per benign request (one query value): nginx {base:.0f} µs,"
            f" nginx+ModSecurity+CRS {with_crs:.0f} µs (+{with_crs - base:.0f} µs);"
            f" bastion's detector {ours_us:.1f} µs per value"
        )
        return 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(nginx.pid, signal.SIGTERM)
        nginx.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
