"""Finished parts of an evaluation kept on disk, so a killed evaluation resumes.

An EOT C&W evaluation of a VGG16 costs hours on a CPU. Each finished part
(clean accuracy, one attack, one batch of an attack, one diagnostic) is
written as one JSON file whose name hashes everything the result depends on:
the model's variables, its ensemble size, the exact images and labels, the
settings, the seed, the batch size and the number of replicas. Running the
same evaluation again reads the finished parts back instead of recomputing
them; a change of any of those gets a new key and is computed afresh. The
library's code is not in the key: a change of an algorithm that changes its
results must add a marker to the attack's spec (as C&W's ``selection`` on
randomized models and the worst-of ``survivors`` do), or the folder must go.
A part asked for twice in one evaluation (a sweep repeating a suite's attack)
is computed or read once and counted once.

The same key also reseeds the model's random generators before a part is
computed (``before_compute``): a part computed twice draws the same noise,
so a resumed evaluation reports what an uninterrupted one would have.
"""

import hashlib
import json
import os
import time

import numpy as np

from keras_rse._io import atomic_write_text


def array_digest(*arrays):
    """sha256 of the arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def model_fingerprint(model):
    """sha256 over the paths and values of ``model``'s variables."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(variable.path.encode())
        digest.update(array_digest(np.asarray(variable)).encode())
    return digest.hexdigest()


class ResumeCache:
    """``get_or_compute(kind, payload, compute)`` backed by ``directory`` (None: no cache).

    Args:
        directory: Where the parts live, or None to always compute.
        context: JSON-able facts shared by every part (model fingerprint,
            ensemble size, batch size, seed, replicas).
        before_compute: Optional ``fn(key)`` called with the part's key (a hex
            string) just before a part is computed, and by `prepare`; the
            evaluation reseeds the model's noise from it.
    """

    def __init__(self, directory, context, before_compute=None):
        self.directory = directory
        self.context = context
        self.before_compute = before_compute
        self.resumed = []
        # What the evaluation cost, parts read back included: a run that only
        # reads its parts back takes seconds and must not report that as its cost.
        self.compute_seconds = 0.0
        self.untimed = []  # parts read back from caches that predate timing
        self._this_run = {}  # key -> value of each part this evaluation already has

    def key(self, kind, payload):
        """20 hex digits naming this part: a hash of the context, kind and payload."""
        blob = json.dumps({"context": self.context, "kind": kind, "payload": payload},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def path(self, kind, payload):
        return os.path.join(self.directory, f"{kind}-{self.key(kind, payload)}.json")

    def prepare(self, kind, payload):
        """Calls ``before_compute`` with this part's key (for parts computed outside
        `get_or_compute`, such as the batches of an attack)."""
        if self.before_compute is not None:
            self.before_compute(self.key(kind, payload))

    def load(self, kind, payload):
        """The stored result of this part, or None (also when there is no folder)."""
        if self.directory is None:
            return None
        path = self.path(kind, payload)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def store(self, kind, payload, value):
        """Writes ``value`` (JSON-able) atomically; returns it as a later `load` would."""
        text = json.dumps(value, sort_keys=True)
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
            atomic_write_text(self.path(kind, payload), text)
        return json.loads(text)  # the same types a resumed run gets back

    def get_or_compute(self, kind, payload, compute, label=None):
        """The stored result of this part if there is one, else ``compute()`` (then stored).

        A dict result is stored with the seconds its computation took (as
        ``seconds``, unless it has its own ``seconds`` or ``wall_seconds``);
        both kinds of parts add their seconds to ``compute_seconds``.

        Args:
            kind: Short name of the part's type (``"clean"``, ``"attack"``...).
            payload: JSON-able facts specific to this part (settings, data digest).
            compute: Zero-argument function returning a JSON-able result.
            label: Name listed in ``resumed`` when the part is read back.

        Returns:
            The part's result.
        """
        key = self.key(kind, payload)
        if key in self._this_run:  # already computed or read back by this evaluation
            return self._this_run[key]
        value = self.load(kind, payload)
        if value is not None:
            self.resumed.append(label or kind)
        else:
            self.prepare(kind, payload)
            started = time.time()
            value = compute()
            if isinstance(value, dict) and not {"seconds", "wall_seconds"} & set(value):
                value = dict(value, seconds=round(time.time() - started, 1))
            if self.directory is not None:
                value = self.store(kind, payload, value)
        seconds = value.get("wall_seconds", value.get("seconds")) if isinstance(
            value, dict) else None
        if seconds is None:
            self.untimed.append(label or kind)
        else:
            self.compute_seconds += seconds
        self._this_run[key] = value
        return value
