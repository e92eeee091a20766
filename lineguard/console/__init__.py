"""``lineguard console``: the inspection web app (live defects, frame viewer, review queue, sign-in).

One process: a Starlette ASGI app served by uvicorn, a Kafka consumer thread on the defect-events topic for
the live feed, MongoDB for everything else. It reads what the workers write (topics and documents through
:mod:`schemas`), never imports :mod:`workers` or :mod:`streams`.
"""
