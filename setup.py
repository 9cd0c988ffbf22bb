"""Maps the repository's top-level sides onto the installed `mke.*` packages.

The user asked for `train/ export/ runtime/ calib/` at the top level; installed, they must import
as `mke.train` etc. so they never collide with other distributions' top-level names. `mke` itself
is a namespace package; `configs/` ships as `mke.configs`. Sub-packages are found here so nobody has to list them by hand.
"""
from setuptools import find_packages, setup

SIDES = ("runtime", "train", "calib", "export", "configs")

packages, package_dir = [], {}
for side in SIDES:
    package_dir[f"mke.{side}"] = side
    packages.append(f"mke.{side}")
    packages += [f"mke.{side}.{sub}" for sub in find_packages(side)]

setup(packages=packages, package_dir=package_dir)
