"""Tables and figures of a grid's results, with the paper's numbers beside ours.

``build_report(DIR)`` reads every ``DIR/<preset>/<run>/run.json`` and its
``metrics.jsonl``, writes ``DIR/report.md`` (one table per preset: mean ± std over seeds
of the best test accuracy, parameters, GMACs, published value) and, for presets with a
depth axis, ``DIR/<preset>_accuracy.png`` (accuracy against depth and against
parameters per act type, published points overlaid) with the plotted numbers in
``DIR/<preset>_accuracy.json``.
"""
import collections
import json
import os

import numpy as np

from ..data.loader import dataset_classes
from ..errors import UsageError
from ..model_zoo import get_model
from ..training.engine.metrics import read_metrics
from ..utils.counting import count_flops, count_params
from .presets import ACT_LABELS, CIFAR_ACTS, PRESETS, cifar_model_name
from .runner import MANIFEST, best_accuracy, epochs_done

__all__ = ['collect', 'summarize', 'build_report', 'render_table', 'plot_accuracy']

_DATASET_NAMES = {'cifar10': 'CIFAR-10', 'cifar100': 'CIFAR-100', 'mnist5k': 'mnist5k'}


def _flag(args, flag, default=None):
    return args[args.index(flag) + 1] if flag in args else default


def collect(root):
    """Manifests of every run under ``root``, with their metric records, by preset.

    Returns
    -------
    dict
        Preset name -> list of manifests (dicts) each with a ``records`` list.
    """
    if not os.path.isdir(root):
        raise UsageError('no results folder %s' % root)
    found = collections.OrderedDict()
    for preset in sorted(os.listdir(root)):
        pdir = os.path.join(root, preset)
        if preset not in PRESETS or not os.path.isdir(pdir):
            continue
        for name in sorted(os.listdir(pdir)):
            path = os.path.join(pdir, name, MANIFEST)
            if not os.path.exists(path):
                continue
            with open(path) as handle:
                manifest = json.load(handle)
            manifest['records'] = read_metrics(os.path.join(pdir, name, 'metrics.jsonl'))
            found.setdefault(preset, []).append(manifest)
    if not found:
        raise UsageError('no runs of any preset under %s (expected <preset>/<run>/%s)'
                         % (root, MANIFEST))
    return found


def _finished(manifest):
    return epochs_done(manifest['records']) >= manifest['num_epochs']


def _model(manifest):
    """The run's network, built from its knobs, and the input shape it trains on."""
    knobs, args = manifest['knobs'], manifest['args']
    options = dict(act_type=knobs['act_type'], r=knobs['r'], act_layers=knobs['act_layers'],
                   attention=knobs['attention'])
    if 'blocks' in knobs:
        dataset = _flag(args, '--dataset', 'cifar100')
        net = get_model(cifar_model_name(knobs), classes=dataset_classes(dataset),
                        use_relu=knobs['use_relu'], use_global=knobs['use_global'], **options)
        size = 32
    else:
        size = int(_flag(args, '--input-size', 224))
        net = get_model(knobs['model'], input_size=size, **options)
    return net, (1, 3, size, size)


def summarize(preset, manifests):
    """Group a preset's runs by variant and reduce over seeds.

    Parameters
    ----------
    preset : Preset
    manifests : list of dict
        From :func:`collect`.

    Returns
    -------
    list of dict
        One row per variant, in the preset's order: ``knobs``, ``runs``
        (how many exist), ``accs`` (best test accuracy of each finished run), ``mean``,
        ``std`` (sample std over seeds, ``None`` for one seed), ``params``, ``macs``,
        ``epochs``.
    """
    order = {json.dumps(k, sort_keys=True): i for i, k in enumerate(preset.variants)}
    manifests = sorted(manifests, key=lambda m: (
        order.get(json.dumps(m['knobs'], sort_keys=True), len(order)), m['seed']))
    groups = collections.OrderedDict()
    for manifest in manifests:
        variant = manifest['name'].rsplit('-s', 1)[0]
        groups.setdefault(variant, []).append(manifest)
    rows = []
    for variant, members in groups.items():
        done = [m for m in members if _finished(m)]
        accs = [best_accuracy(m['records']) for m in done]
        net, shape = _model(members[0])
        rows.append({
            'variant': variant, 'knobs': members[0]['knobs'], 'runs': len(members),
            'accs': accs, 'mean': float(np.mean(accs)) if accs else None,
            'std': float(np.std(accs, ddof=1)) if len(accs) > 1 else None,
            'params': count_params(net, shape)['total'],
            'macs': count_flops(net, shape)['macs'],
            'epochs': members[0]['num_epochs'],
        })
    return rows


def _cell(column, value):
    if column == 'act_type':
        return ACT_LABELS.get(str(value).lower(), str(value))
    if column == 'attention':
        return {'se': 'SE', 'ge': 'GE-θ+'}.get(value, '–')
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return str(value)


def _percent(value):
    return '–' if value is None else '%.2f' % (100 * value)


def _params_text(count):
    return '%.1fM' % (count / 1e6) if count >= 1e6 else '{:,}'.format(count)


def _describe(preset, manifests):
    args = manifests[0]['args']
    epochs = manifests[0]['num_epochs']
    if preset.family == 'cifar':
        dataset = _flag(args, '--dataset', 'cifar100')
        name = _DATASET_NAMES.get(dataset, dataset)
        if dataset == 'cifar100':
            name += ' (COARSE 20-class labels)' if '--coarse-labels' in args else \
                ' (fine 100-class labels)'
    else:
        size = int(_flag(args, '--input-size', 224))
        name = 'ImageNet at %dx%d (GE-θ+ parameters depend on it)' % (size, size)
    return '%s, %d epoch(s); accuracy = best test accuracy over epochs, mean ± std over ' \
           'seeds (%%)' % (name, epochs)


def render_table(preset, manifests, rows):
    """Markdown section of one preset: title, setting, table, notes."""
    paper_heading = {'cifar': 'paper, C100 coarse (%)', 'imagenet': 'paper top-1 (%)'}
    header = [c.replace('_', ' ') for c in preset.columns] + ['runs', 'accuracy (%)']
    if preset.published:
        header.append(paper_heading[preset.family])
    header += ['params', 'GMACs']
    if preset.published_params:
        header.append('paper params')
    lines = ['## %s' % preset.name, '', preset.title + '.', '',
             _describe(preset, manifests) + '.', '',
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        key = preset.key(row['knobs'])
        acc = _percent(row['mean'])
        if row['std'] is not None:
            acc += ' ± %.2f' % (100 * row['std'])
        cells = [_cell(c, v) for c, v in zip(preset.columns, key)]
        cells += ['%d/%d' % (len(row['accs']), row['runs']), acc]
        if preset.published:
            cells.append(_percent(preset.published.get(key)))
        cells += [_params_text(row['params']), '%.4g' % (row['macs'] / 1e9)]
        if preset.published_params:
            paper = preset.published_params.get(key)
            cells.append(_params_text(int(paper)) if paper else '–')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append('runs = finished/started runs of the variant; params count every saved '
                 'array (BN running statistics included, as the paper).')
    if preset.note:
        lines += ['', 'Note: ' + preset.note + '.']
    return '\n'.join(lines) + '\n'


def plot_accuracy(preset, rows, path):
    """Accuracy against depth and parameters per act type, published points overlaid.

    Writes the PNG ``path`` and, next to it, a JSON with exactly the plotted numbers.

    Returns
    -------
    dict
        The plotted points: ``ours[act] = [[depth, params, mean, std], ...]`` and
        ``paper[act] = [[depth, acc], ...]``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    ours, paper = collections.OrderedDict(), collections.OrderedDict()
    for row in rows:
        if row['mean'] is not None:
            ours.setdefault(row['knobs']['act_type'], []).append(
                [row['knobs']['depth'], row['params'], row['mean'], row['std'] or 0.0])
    for (act, depth), acc in sorted(preset.published.items()):
        paper.setdefault(act, []).append([depth, acc])
    params_of = {(r['knobs']['act_type'], r['knobs']['depth']): r['params'] for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=100)
    colors = plt.get_cmap('tab10')
    acts = [a for a in CIFAR_ACTS if a in ours or a in paper]
    for act in acts:
        # One colour per act type in every figure, whichever runs exist.
        color = colors(CIFAR_ACTS.index(act) % 10)
        label = ACT_LABELS.get(act.lower(), act)
        points = sorted(ours.get(act, []))
        for ax, x in zip(axes, (0, 1)):
            if points:
                ax.errorbar([p[x] for p in points], [100 * p[2] for p in points],
                            yerr=[100 * p[3] for p in points], color=color, marker='o',
                            capsize=3, label=label)
            published = [(d, a) for d, a in paper.get(act, [])
                         if x == 0 or (act, d) in params_of]
            if published:
                xs = [d if x == 0 else params_of[(act, d)] for d, _ in published]
                ax.plot(xs, [100 * a for _, a in published], color=color, linestyle=':',
                        marker='s', markerfacecolor='none',
                        label=label + ' (paper)' if x == 0 else None)
    axes[0].set_xlabel('depth (layers)')
    axes[1].set_xlabel('parameters')
    axes[1].xaxis.set_major_formatter(
        matplotlib.ticker.FuncFormatter(lambda v, _: '%.0fK' % (v / 1e3)))
    for ax in axes:
        ax.set_ylabel('accuracy (%)')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    fig.suptitle('%s: ours (solid, mean ± std over seeds) vs paper (dotted, hollow squares, '
                 'CIFAR-100 coarse labels)' % preset.name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    plotted = {'ours': ours, 'paper': paper}
    with open(os.path.splitext(path)[0] + '.json', 'w') as handle:
        json.dump(plotted, handle, indent=1)
    return plotted


def build_report(root, log=print):
    """Write ``root/report.md`` and the figures; return the markdown.

    Parameters
    ----------
    root : str
        Output folder of ``python -m gluon_atac.experiments run``.
    log : callable, default print
        Receives the paths written.

    Returns
    -------
    str
        The markdown of ``report.md``.
    """
    sections = ['# Results under %s' % os.path.abspath(root), '']
    for name, manifests in collect(root).items():
        preset = PRESETS[name]
        rows = summarize(preset, manifests)
        sections.append(render_table(preset, manifests, rows))
        if preset.figure and any(r['mean'] is not None for r in rows):
            png = os.path.join(root, '%s_accuracy.png' % name)
            plot_accuracy(preset, rows, png)
            sections.append('![%s](%s)\n' % (name, os.path.basename(png)))
            log('wrote %s' % png)
    text = '\n'.join(sections)
    path = os.path.join(root, 'report.md')
    with open(path, 'w') as handle:
        handle.write(text)
    log('wrote %s' % path)
    return text
