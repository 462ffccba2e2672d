"""mobilevlm-mini: a tiny, trainable MobileVLM built from scratch, one lesson at a time."""

import warnings

__version__ = "0.1.0"

# Progress bars: `tqdm.auto` draws text bars when ipywidgets is absent, which is what saved notebooks
# should show (a widget bar renders as nothing on the web), so its hint to install ipywidgets is noise.
warnings.filterwarnings("ignore", message="IProgress not found")
