"""Install gluon_atac: Attention as Activation units and hosts for MXNet/Gluon."""
from setuptools import find_packages, setup

# Each has gluon_atac/commands/<name>.py, runs as `python -m gluon_atac.<name>` and as the
# console script gluon-atac-<name>.
COMMANDS = ('evaluate', 'export', 'classify', 'visualize', 'summary', 'demo', 'launch',
            'experiments')

setup(
    name="gluon_atac",
    version="0.1.0",
    description="Attention as Activation (ATAC) units and networks for MXNet Gluon",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gluon_atac", "gluon_atac.*"]),
    package_data={"gluon_atac.ops": ["*.cc"]},
    python_requires=">=3.8,<3.12",
    install_requires=[
        "numpy==1.23.5",
        "mxnet==1.9.1",
        "gluoncv==0.10.5.post0",
        "matplotlib",
        "tqdm",
        "mlxtend",
    ],
    # onnx 1.15: newer releases drop onnx.mapping, which mxnet.onnx imports; onnxruntime
    # 1.18.1: the quantization of later ones needs onnx >= 1.16 (TensorProto.INT4).
    # horovod (for --kv-store horovod) builds from source against the installed MXNet, so
    # it needs a C++ compiler, `pip install 'cmake<4' wheel` first (Gloo's CMake files
    # predate CMake 4), pip's --no-build-isolation (the build imports mxnet) and
    # HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1
    # HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1; `make venv` does all that.
    extras_require={"test": ["pytest", "pytest-xdist"],
                    "onnx": ["onnx==1.15.0", "onnxruntime==1.18.1"],
                    "horovod": ["horovod==0.28.1"]},
    py_modules=["train_cifar", "train_imagenet"],
    entry_points={"console_scripts": [
        'gluon-atac-train-cifar = gluon_atac.training.cifar:main',
        'gluon-atac-train-imagenet = gluon_atac.training.imagenet:main',
    ] + ['gluon-atac-%s = gluon_atac.commands.%s:main' % (name, name) for name in COMMANDS]},
)
