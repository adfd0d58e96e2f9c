from setuptools import find_packages, setup

PACKAGE = "arx_x5_driver"

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
        "ARX X5 arm driver: safety core, real backend (arx5-interface SDK over CAN) and "
        "the simulated MuJoCo rig."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "arm_node = arx_x5_driver.arm_node:main",
        ],
    },
)
