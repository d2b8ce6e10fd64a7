# What fake_forge.py and fake_sts.py share: each request they receive becomes
# <dir>/request-<n>.json, which recording_peer.hpp reads while the test polls. The file is written
# under another name and renamed, so a reader never sees half of it.
import json
import os
import threading

_lock = threading.Lock()
_count = 0


def record(directory, request):
    """Writes `request` (a JSON-serialisable dict) as the next request-<n>.json; returns n."""
    global _count
    with _lock:
        _count += 1
        n = _count
    path = os.path.join(directory, f"request-{n}.json")
    with open(path + ".part", "w") as f:
        json.dump(request, f)
    os.replace(path + ".part", path)
    return n
