"""The ``otel-liveview`` command: `main` parses the command line; each subcommand (`demo`, `view`,
`alerts`, `check`) lives in a module of its own."""
