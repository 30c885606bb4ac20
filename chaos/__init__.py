"""`make chaos`: the whole system as real processes, under load, while its parts are killed and restarted.

`python -m chaos --help` for the options; the README's "Chaos" section says what is checked. Modules:
`cluster` (the processes), `fake` (the sim fake's own process, which can go down and come back),
`load` (the generations, over HTTP and NATS), `faults` (the schedule of kills and outages),
`checks` (the figures), `run` (all of it, in order).
"""
