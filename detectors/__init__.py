"""The compact drift core: per-feature monitors and their detectors. Pure Python + numpy, no I/O.

>>> import numpy as np
>>> from streamdrift.detectors import NumericMonitor
>>> rng = np.random.default_rng(1)
>>> monitor = NumericMonitor()
>>> [d.detector for d in monitor.update(rng.normal(0, 1, 50_000))]
[]
"""

if __name__ != "streamdrift.detectors":
    # This folder is installed as streamdrift.detectors. Imported by its folder name, it would be a
    # second copy of every class, and ``isinstance`` / ``type(...) is`` checks fail across the two.
    raise ImportError(f"this package is streamdrift.detectors, not {__name__!r}: "
                      "import it as `from streamdrift.detectors import ...`")

from .adwin import ADWIN
from .categorical import CategoricalMonitor
from .comparison import LossComparison, MeanSequence
from .binary import DDM, HDDM_A
from .detection import Detection, Detector, Hit, NotFittedError
from .frequency import FrequencyTest
from .ks import WindowedKS
from .joint import JointShift
from .missing_rate import MissingRate
from .multivariate import MULTIVARIATE_DETECTORS, MultivariateMonitor, MultivariateSettings
from .numeric import NumericMonitor
from .page_hinkley import PageHinkley
from .pca_shift import PcaShift
from .reference import Reference
from .scale import Scale
from .settings import CATEGORICAL_DETECTORS, NUMERIC_DETECTORS, MonitorSettings
from .state import StateError, decode_monitor, encode_monitor, monitor_record, reference_tag

__all__ = [
    "ADWIN", "DDM", "HDDM_A", "LossComparison", "MeanSequence", "Detector", "Hit", "NotFittedError", "CategoricalMonitor", "Detection", "FrequencyTest", "WindowedKS", "MissingRate",
    "NumericMonitor", "PageHinkley", "Reference", "Scale", "MonitorSettings", "NUMERIC_DETECTORS",
    "CATEGORICAL_DETECTORS", "JointShift", "PcaShift", "MultivariateMonitor", "MultivariateSettings", "MULTIVARIATE_DETECTORS",
    "StateError", "encode_monitor", "monitor_record", "decode_monitor", "reference_tag",
]
