"""Datasets as uint8 image arrays: CIFAR-10/100 from the official files, and mnist5k."""
