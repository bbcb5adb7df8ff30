"""The terminal view: an embedded OTLP receiver (`receiver`), the board that folds what arrives into
rows (`board`), the panels as sheets (`panels`) laid out on the screen (`screen`), and a running view
(`session`). Needs the `view` extra (rich)."""
