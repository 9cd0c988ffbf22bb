"""The hand-over between capture and inference: one slot, so a queue can never grow.

A live source overwrites a frame inference has not taken yet (the newest frame wins; the replaced
one counts as dropped); a source that is not live waits until the slot is free (nothing dropped).
"""
from __future__ import annotations

import threading


class NewestSlot:
    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._full = False

    def put_newest(self, item) -> bool:
        """Store `item`; True when it replaced one nobody took (a dropped, stale frame)."""
        with self._cond:
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify_all()
            return replaced

    def put_wait(self, item, stop: threading.Event) -> bool:
        """Store `item` once the slot is free; False if `stop` was set first."""
        with self._cond:
            while self._full and not stop.is_set():
                self._cond.wait(0.05)
            if stop.is_set():
                return False
            self._item, self._full = item, True
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float):
        """The item, or None after `timeout_s` with nothing there."""
        with self._cond:
            if not self._full:
                self._cond.wait(timeout_s)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return item
