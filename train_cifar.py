"""Train an ATAC (or baseline) pre-activation ResNet on CIFAR-10/100 or mnist5k.

The original open-atac command line works verbatim, e.g.::

    python train_cifar.py --gpus 0 --num-epochs 400 --mode hybrid -j 32 --batch-size 128 \
        --wd 0.0001 --lr 0.2 --lr-decay 0.1 --lr-decay-epoch 300,350 --dataset cifar100 \
        --model atac --act-type ChaATAC --useReLU --r 2 --blocks 3

See ``python train_cifar.py --help``; the logic lives in :mod:`gluon_atac.training.cifar`.
"""
from gluon_atac.training.cifar import main

if __name__ == '__main__':
    main()
