from setuptools import setup

# Metadata, packages, data files and console scripts: setup.cfg.
setup()
