"""The worker's garbage-collector settings (mailer.collector), in a process of their own:
freezing the test process's objects would change every test after this one."""

from __future__ import annotations

import subprocess
import sys

# Cycles made before and after settling; the second is left to the collector's own
# schedule (allocations, no gc.collect call), as a worker's would be.
_SCRIPT = """
import gc, weakref
from mailer.collector import YOUNG_EVERY, settle_collector

class Node:
    pass

before = Node(); before.me = before
before_gone = weakref.ref(before)
del before
kept = Node()
settle_collector()
print("before", before_gone() is None)
print("kept", gc.is_tracked(kept), gc.get_freeze_count() > 0)
print("threshold", gc.get_threshold()[0] == YOUNG_EVERY)

after = Node(); after.me = after
after_gone = weakref.ref(after)
del after
many = [[] for _ in range(YOUNG_EVERY // 2)]
print("after, soon", after_gone() is None)
many += [[] for _ in range(2 * YOUNG_EVERY)]
print("after, later", after_gone() is None)
"""


def test_a_settled_process_frees_its_old_garbage_once_and_new_cycles_on_a_longer_schedule():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "before True",  # garbage at the time is freed, not frozen for the process's life
        "kept True True",  # what is alive is set aside from later collections
        "threshold True",
        "after, soon False",  # young collections wait for YOUNG_EVERY allocations...
        "after, later True",  # ...and still free the cycles made since
    ]
