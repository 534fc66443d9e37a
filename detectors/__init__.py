"""The compact drift core: per-feature monitors and their detectors. Pure Python + numpy, no I/O.

>>> import numpy as np
>>> from streamdrift.detectors import NumericMonitor
>>> rng = np.random.default_rng(1)
>>> monitor = NumericMonitor()
>>> [d.detector for d in monitor.update(rng.normal(0, 1, 50_000))]
[]
"""

from .adwin import ADWIN
from .categorical import CategoricalMonitor
from .detection import Detection
from .frequency import FrequencyTest
from .ks import WindowedKS
from .missing_rate import MissingRate
from .numeric import NumericMonitor
from .page_hinkley import PageHinkley
from .reference import Reference
from .settings import CATEGORICAL_DETECTORS, NUMERIC_DETECTORS, MonitorSettings
from .state import StateError, decode_monitor, encode_monitor, monitor_record, reference_tag

__all__ = [
    "ADWIN", "CategoricalMonitor", "Detection", "FrequencyTest", "WindowedKS", "MissingRate",
    "NumericMonitor", "PageHinkley", "Reference", "MonitorSettings", "NUMERIC_DETECTORS",
    "CATEGORICAL_DETECTORS", "StateError", "encode_monitor", "monitor_record", "decode_monitor", "reference_tag",
]
