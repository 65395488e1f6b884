"""Train a ResNet v1b with attentional activations on ImageNet.

The original open-atac command line works verbatim (on a GPU machine), e.g.::

    python train_imagenet.py --mode hybrid --lr 0.075 --lr-mode cosine --num-epochs 160 \
        --batch-size 128 --num-gpus 2 -j 48 --warmup-epochs 5 --dtype float16 --use-rec \
        --last-gamma --no-wd --label-smoothing --save-dir params_resnet50_v1b_ChaATAC_2 \
        --logging-file resnet50_v1b_ChaATAC_2.log --r 2 --act-layers 2

See ``python train_imagenet.py --help``; the logic lives in
:mod:`gluon_atac.training.imagenet`.
"""
from gluon_atac.training.imagenet import main

if __name__ == '__main__':
    main()
