import sys

from otel_liveview.cli.main import main

sys.exit(main())
