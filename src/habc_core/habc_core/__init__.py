"""habc_core: the contract between the rig and the trainer, importable without ROS or torch."""
