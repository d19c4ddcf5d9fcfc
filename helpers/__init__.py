"""Shared code for the face-aging GAN course.

The notebooks in ``notebooks/`` import from here; every network, loss, dataset and plot is
defined once, in one of these modules:

The modules read bottom-up, each importing only from the layers below it:

1. ground: ``config``, ``plots``, ``splits``, ``faces``, ``colab``, ``layers`` (shared blocks, losses, schedules);
2. machinery: ``training``, ``runs`` (the one Run base), ``cache``, ``sources``, ``toyfaces``, ``metrics``;
3. model families: ``dcgan``, ``cyclegan``, ``cdcgan``, ``encoder``, ``agegan``;
4. ``catalog`` (one table of the models) and the apps: ``train``, ``evaluate``, ``age_photo``,
   ``benchmark``, ``pretrained`` (shipped weights).

- :mod:`helpers.config`     every size and path, and smoke mode (``SMOKE=1``)
- :mod:`helpers.toyfaces`   the built-in synthetic faces with ground-truth aging
- :mod:`helpers.sources`    UTKFace (Kaggle), facial-age and IMDB-WIKI loaders; ``load_faces``
- :mod:`helpers.splits`     age ranges, age groups and the train/test split
- :mod:`helpers.cache`      the preprocessed uint8 image cache, datasets and ``BatchLoader``
- :mod:`helpers.explore`    plots for exploring a face table (notebook 01)
- :mod:`helpers.training`   device, mixed precision, loss history, checkpoints, ``Trainer``
- :mod:`helpers.plots`      image grids, loss curves, GIFs and animations
- :mod:`helpers.dcgan`      DCGAN and its conditional version (notebooks 02 and 04)
- :mod:`helpers.cyclegan`   CycleGAN young <-> old (notebook 03)
- :mod:`helpers.agegan`     the age-modulated encoder-decoder GAN (notebook 06)
- :mod:`helpers.faces`      finding and cropping a face in any photo (notebook 08)
- :mod:`helpers.age_photo`  aging a photo with every trained model (notebook 08)

Command lines: ``python -m helpers.toyfaces``, ``python -m helpers.train MODEL``,
``python -m helpers.benchmark WHAT`` and ``python -m helpers.age_photo PHOTO``.
"""

__version__ = "0.1.0"
