from setuptools import find_packages, setup

PACKAGE = "habc_trainer"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="habc-rig maintainers",
    maintainer_email="habc-rig@example.com",
    description=(
        "HABC trainer: episode bags to labeled windows, dual-head critic, weighted "
        "flow-matching actor, rounds. No ROS runtime needed."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "convert = habc_trainer.convert:main",
            "train_round = habc_trainer.train_round:main",
        ],
    },
)
