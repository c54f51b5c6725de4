"""`make bench`: public widget API throughput against a one-insert DRF baseline."""
