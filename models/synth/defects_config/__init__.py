"""The ``defects_config.json`` of each MVTec LOCO AD scenario, shipped with the generator.

A package (rather than a plain folder) so that setuptools' ``*.json`` package data picks the files
up and the generator never reads anything outside the installed project at run time.
``juice_bottle.json`` is the official file; the other four were reconstructed from public
statistics (names and pixel values), which is all the generated data set needs.
"""
