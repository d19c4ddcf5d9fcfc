"""Shared code for the face-aging GAN course.

The notebooks in ``notebooks/`` import from here; every network, loss, dataset and plot is
defined once, in one of these modules:

- :mod:`helpers.config`   every size and path, and smoke mode (``SMOKE=1``)
- :mod:`helpers.toyfaces` the built-in synthetic faces with ground-truth aging
- :mod:`helpers.sources`  UTKFace (Kaggle), facial-age and IMDB-WIKI loaders
- :mod:`helpers.splits`   age ranges, age groups and train/test splits
- :mod:`helpers.cache`    the preprocessed uint8 image cache and PyTorch datasets
"""

__version__ = "0.1.0"
