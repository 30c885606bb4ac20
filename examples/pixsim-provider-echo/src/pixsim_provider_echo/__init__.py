"""Echo Images: an example third-party PixSim provider (see README.md). PixSim loads `manifest`."""
