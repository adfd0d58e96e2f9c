from setuptools import find_packages, setup

PACKAGE = "habc_core"

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
        "The rig's contract: topics, message types, enums, feature keys, the episode sidecar, "
        "the bag writer and reader, the CLI conventions. No ROS runtime, no torch."
    ),
    license="Apache-2.0",
)
