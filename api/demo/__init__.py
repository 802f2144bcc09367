"""The demo city: seeds the live database through the platform's own services (``nearx up``).

It takes plain records (``records.py``), so it knows nothing of where they came from; the
composition root (``nearx/cli.py``) derives them from the city simulator's entities.
"""
