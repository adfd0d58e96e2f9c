from setuptools import find_packages, setup

PACKAGE = "habc_benchmark"

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
        "The paper's protocol on the simulated rig: seed plan, evaluation, the resumable "
        "benchmark runner, critic probes, the generated report. Never installed on a robot PC."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "evaluate = habc_benchmark.evaluate:main",
            "habc-benchmark = habc_benchmark.cli:main",
            "habc-benchmark-compare = habc_benchmark.compare:main",
        ],
    },
)
