"""`otel-liveview alerts`: a thresholds file -> Prometheus rules and Grafana alert provisioning (docs/alerts.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otel_liveview.alerts.rules import PROMETHEUS_DATASOURCE_UID, render
from otel_liveview.alerts.thresholds import DATASOURCE_UID, UID_RULE, ThresholdsError

DEFAULT_OUT_DIR = "deploy"


DESCRIPTION = """\
Render alert rules from a thresholds file: Prometheus rule files (for Prometheus, or the ruler of
Mimir or Thanos) and Grafana alert provisioning.

A thresholds file is YAML with one list, 'thresholds'. Each entry watches a published metric
('metric', optionally 'phase' and 'topic') or a data-stream value ('stream' and 'key') and fires
when it is 'above' or 'below' a number for a duration ('for', e.g. 5m); 'severity' is info,
warning or critical. An optional top-level 'datasource_uid' names the Prometheus datasource the
Grafana rules query. For example:

  thresholds:
    - metric: loss
      phase: train
      above: 2
      for: 5m

Every mistake of the file is reported at once, each with its line, and then nothing is written.
Written: OUT_DIR/prometheus/rules/liveview-thresholds.rules.yml and liveview-builtin.rules.yml,
OUT_DIR/grafana/provisioning/alerting/liveview.yaml.
"""


def datasource_uid(value: str) -> str:
    """argparse type of --datasource-uid."""
    if not DATASOURCE_UID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r}: {UID_RULE}")
    return value


def out_dir(value: str) -> Path:
    """argparse type of --out-dir: a directory, or one to make in a directory that exists."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a directory")
    if not path.exists() and not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r}: its parent directory does not exist")
    return path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "alerts",
        help="render Prometheus rules and Grafana alerting from a thresholds file",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("thresholds", help="the thresholds YAML file")
    parser.add_argument(
        "--out-dir",
        type=out_dir,
        help=f"where to write prometheus/ and grafana/; made if missing, but its parent must exist "
        f"(default: ./{DEFAULT_OUT_DIR}, which must exist)",
    )
    parser.add_argument(
        "--datasource-uid",
        type=datasource_uid,
        metavar="UID",
        help="uid of the Prometheus datasource the Grafana rules query (wins over the file's "
        f"datasource_uid; default {PROMETHEUS_DATASOURCE_UID}, the bundle's)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = args.out_dir or DEFAULT_OUT_DIR
    if args.out_dir is None and not Path(out).is_dir():  # outside a checkout: no new deploy/ tree
        print(
            f"otel-liveview alerts: ./{out}/ does not exist here; run it in a checkout or pass --out-dir DIR",
            file=sys.stderr,
        )
        return 2
    try:
        written = render(args.thresholds, out, getattr(args, "datasource_uid", None))
    except ThresholdsError as error:
        print(f"otel-liveview alerts: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path under the output directory that cannot be written
        print(f"otel-liveview alerts: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


__all__ = [
    "DEFAULT_OUT_DIR",
    "DESCRIPTION",
    "datasource_uid",
    "out_dir",
    "register",
    "run",
]
