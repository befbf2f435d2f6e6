"""A dev-only Azure Functions host for the Python v2 programming model (never deployed).

Where Azure Functions Core Tools are not installed, this package runs `function_app:app`
the way `func start` would: app settings from local.settings.json, host.json options, HTTP
functions behind a real ASGI server, Event Hub triggers fed from the local event log
(shared/eventlog.py) with checkpoints in Azurite, and NCRONTAB timers.

    python -m devtools.devhost --host 127.0.0.1 --port 7071 [--functions http|triggers]

Modules, each usable on its own: settings (local.settings.json, host.json, binding
expressions, timespans), retry (retry policies), indexing (import and index the app),
invocation (calling user functions the way the worker does), routing (Functions route
templates, matched with werkzeug.routing) and route_constraints (their inline
constraints), http (the ASGI app), eventhub (Event Hub trigger listener) with
eventhub_wire (the trigger's data and metadata as the host sends them) and checkpoints
(checkpoint stores), timers (timer trigger listener), listeners (what both kinds of
listener share), __main__ (command line).
"""

# The host's admin status endpoint: answers 200 once the host runs.
STATUS_PATH = "/admin/host/status"
