"""The package's layers import only downwards, and ``import gluon_atac`` stays a library.

Layers, lowest first (docs/contributing.md lists the same order):
errors, registry < ops < nn < model_zoo < data, utils < trained (the trained-model layer) <
training engine < training recipes < commands (gluon_atac.commands, experiments, and the
``python -m gluon_atac.<command>`` entry modules). No command imports another.
"""
import ast
import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'gluon_atac')

# Module-name prefixes and their layer; the longest matching prefix decides.
LAYERS = {
    'gluon_atac.errors': 0,
    'gluon_atac.registry': 0,
    'gluon_atac.ops': 1,
    'gluon_atac.nn': 2,
    'gluon_atac.model_zoo': 3,
    'gluon_atac.data': 4,
    'gluon_atac.utils': 4,
    'gluon_atac.trained': 5,
    'gluon_atac.training': 6,
    'gluon_atac.training.engine': 6,
    'gluon_atac.training.cifar': 7,
    'gluon_atac.training.imagenet': 7,
}
COMMANDS = 8


def layer_of(module):
    """Layer of a dotted ``gluon_atac`` module name (commands unless listed)."""
    matches = [p for p in LAYERS if module == p or module.startswith(p + '.')]
    return LAYERS[max(matches, key=len)] if matches else COMMANDS


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                is_package = rel[-1] == '__init__'
                yield path, '.'.join(rel[:-1] if is_package else rel), is_package


def _imports(path, module, is_package):
    """Every ``gluon_atac`` module ``path`` imports, at any depth of its code."""
    tree = ast.parse(open(path).read(), path)
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('gluon_atac'):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if not target.startswith('gluon_atac'):
                continue
            for alias in node.names:
                # ``from . import ops`` names a module, ``from .nn import ChaATAC`` a member.
                child = target + '.' + alias.name
                yield child if os.path.exists(_path_of(child)) else target


def _path_of(module):
    parts = module.split('.')[1:]
    base = os.path.join(PACKAGE, *parts)
    return base + '.py' if os.path.isfile(base + '.py') else os.path.join(base, '__init__.py')


def test_layer_table_knows_every_library_package():
    assert layer_of('gluon_atac.training.engine.loop') == 6
    assert layer_of('gluon_atac.training.cifar') == 7
    assert layer_of('gluon_atac.trained') == 5
    assert layer_of('gluon_atac.evaluate') == COMMANDS
    assert layer_of('gluon_atac.commands.export') == COMMANDS
    assert layer_of('gluon_atac.utils.counting') == 4


def test_no_module_imports_a_higher_layer():
    upward = []
    for path, module, is_package in _modules():
        if module == 'gluon_atac':
            continue  # the package root gathers the public API of the library layers
        for target in _imports(path, module, is_package):
            if layer_of(target) > layer_of(module):
                upward.append('%s (layer %d) imports %s (layer %d)'
                              % (module, layer_of(module), target, layer_of(target)))
    assert not upward, '\n'.join(upward)


def test_the_package_root_imports_only_library_layers():
    path = os.path.join(PACKAGE, '__init__.py')
    high = [t for t in _imports(path, 'gluon_atac', True) if layer_of(t) > 4]
    assert not high


def test_import_gluon_atac_loads_no_command_training_or_progress_module():
    code = ('import sys, gluon_atac; print("\\n".join(sorted(m for m in sys.modules if '
            'm.startswith(("gluon_atac", "tqdm")))))')
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True,
                         cwd=os.path.dirname(PACKAGE)).stdout.split()
    assert 'gluon_atac' in out and 'gluon_atac.nn' in out
    loaded = [m for m in out if m.startswith('tqdm') or (m != 'gluon_atac' and layer_of(m) > 4)]
    assert not loaded, loaded


@pytest.mark.parametrize('module', ['gluon_atac.training.cifar',
                                    'gluon_atac.training.imagenet'])
def test_recipes_do_not_import_each_other(module):
    path = _path_of(module)
    other = ({'gluon_atac.training.cifar', 'gluon_atac.training.imagenet'} - {module}).pop()
    assert other not in set(_imports(path, module, False))


def test_no_command_imports_another_command():
    """Commands share the trained-model layer below them, never each other."""
    commands = os.path.join(PACKAGE, 'commands')
    crossing = []
    for name in sorted(os.listdir(commands)):
        if not name.endswith('.py') or name == '__init__.py':
            continue
        module = 'gluon_atac.commands.' + name[:-3]
        for target in _imports(os.path.join(commands, name), module, False):
            if target.startswith('gluon_atac.commands') or (
                    layer_of(target) == COMMANDS and not target.startswith(
                        'gluon_atac.experiments')):
                crossing.append('%s imports %s' % (module, target))
    assert not crossing, '\n'.join(crossing)


def test_every_command_runs_as_python_m_and_as_a_console_script():
    """``python -m gluon_atac.<command>`` and ``gluon-atac-<command>`` reach one main."""
    from importlib.metadata import entry_points
    scripts = {e.name: e.value for e in entry_points(group='console_scripts')
               if e.name.startswith('gluon-atac-')}
    for name in sorted(os.listdir(os.path.join(PACKAGE, 'commands'))):
        if name.endswith('.py') and name != '__init__.py':
            command = name[:-3]
            entry = os.path.join(PACKAGE, command + '.py')
            entry = entry if os.path.isfile(entry) else os.path.join(PACKAGE, command,
                                                                     '__main__.py')
            assert 'commands.%s import main' % command in open(entry).read(), entry
            assert scripts['gluon-atac-' + command] == 'gluon_atac.commands.%s:main' % command
