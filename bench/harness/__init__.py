"""What the bench's scenarios share: the system under test (in this process or as processes), load,
and the instruments. See bench/README.md."""
