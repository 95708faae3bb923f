"""temzoo: segmentation of TEM/HRTEM micrographs with a model zoo, confidence and feature-importance maps.

The library never imports Streamlit; the app in ``app.py``/``pages/`` and the CLI (``python -m temzoo``) are thin
layers over it. Importing ``temzoo`` is cheap: heavy modules (torch, hyperspy) load only when used.
"""

from temzoo.errors import TemzooError
from temzoo.types import Micrograph

__version__ = "0.1.0"
__all__ = ["Micrograph", "TemzooError", "__version__"]
