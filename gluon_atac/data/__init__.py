"""Datasets as uint8 image arrays: CIFAR-10/100 from the official files, and mnist5k."""
from .cifar import DataError, load_cifar, write_cifar_files, find_cifar_files
from .mnist5k import load_mnist5k
from .loader import ImageData, DATASETS, get_dataset, default_data_dir, train_loader, \
    eval_loader
