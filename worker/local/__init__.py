"""The embedded local stack: the Temporal dev server, the local Convex backend, ``jangar dev``.

For development, ``make run`` and the tests; production runs none of it. Every server started
here is stopped by its PID.
"""
