"""The worker process: Temporal workers, the dispatcher, health and metrics, the Temporal client.

What a pod runs (``jangar worker``). It builds the activities from the settings
(``worker.factories``) and registers them with the workflows of ``workflows/``.
"""
