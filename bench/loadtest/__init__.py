"""``bench loadtest``: HTTP load on the service's sync and async endpoints through Locust.

Locust always runs in processes of its own (it monkey-patches with gevent at import). The service
is started here too, unless ``--host`` points at a running one. Every process is a
:class:`bench.children.Child` in a session of its own, stopped by its own pid at the end and on
Ctrl-C.

- :mod:`bench.loadtest.service`: the service to load (checked, started, asked about itself).
- :mod:`bench.loadtest.locust`: Locust's processes, and the summary of a headless run.
"""
