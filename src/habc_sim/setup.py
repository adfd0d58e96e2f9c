from setuptools import find_packages, setup

PACKAGE = "habc_sim"

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
        "The simulated bimanual ARX X5 rig (MuJoCo): the pouch task as a gym-style env, "
        "the scripted expert and operator, replay policies. Never installed on a robot PC."
    ),
    license="Apache-2.0",
)
