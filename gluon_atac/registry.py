"""Name -> builder registries: activations, attention modules, norm layers and models.

One small helper serves them all, as timm's layer factories and model registry do: a name
is looked up case-insensitively (aliases allowed), an unknown name raises ``ValueError``
listing the valid ones, and each entry may carry the keyword options its builder accepts
and a configuration (a model's registered defaults).
"""
import re

__all__ = ['Registry', 'Entry', 'natural_key']


def natural_key(name):
    """Sort key that orders ``cifar_resnet8_v2`` before ``cifar_resnet14_v2``."""
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]


class Entry:
    """One registered name.

    Attributes
    ----------
    name : str
        The canonical (lower-case) name.
    builder : callable
    options : tuple of str or None
        Keyword options the builder accepts; ``None`` passes every keyword through.
    config : object
        What the registrant attached (e.g. a model's defaults), or ``None``.
    """

    __slots__ = ('name', 'builder', 'options', 'config')

    def __init__(self, name, builder, options, config):
        self.name, self.builder, self.options, self.config = name, builder, options, config


class Registry:
    """Builders of one kind of block, chosen by name.

    Parameters
    ----------
    kind : str
        What the names name, for messages (``'act type'``, ``'model'`` ...).
    separator_insensitive : bool, default False
        Also accept ``-`` for ``_`` in names (``gather-excite``).

    Examples
    --------
    >>> ACTS = Registry('act type')
    >>> ACTS.register('relu', lambda channels: nn.Activation('relu'))
    >>> ACTS.build('ReLU', 64)
    """

    def __init__(self, kind, separator_insensitive=False):
        self.kind = kind
        self._separators = separator_insensitive
        self._entries = {}
        self._aliases = {}

    def register(self, name, builder=None, options=None, aliases=(), config=None):
        """Register ``builder`` under ``name``; without ``builder``, a decorator.

        Parameters
        ----------
        name : str
        builder : callable, optional
        options : iterable of str, optional
            Keyword options the builder accepts; :meth:`build` drops options that other
            entries of the registry know and this one does not (a host passes one set to
            every place), and refuses options no entry knows.
        aliases : iterable of str
        config : object, optional
            Attached to the entry (see :meth:`config`).
        """
        if builder is None:
            return lambda func: self.register(name, func, options, aliases, config) or func
        key = self._key(name)
        if key in self._entries or key in self._aliases:
            raise ValueError('%s %r is registered twice' % (self.kind, name))
        self._entries[key] = Entry(key, builder, None if options is None else tuple(options),
                                   config)
        for alias in aliases:
            self._aliases[self._key(alias)] = key
        return None

    def _key(self, name):
        key = str(name).lower()
        return key.replace('-', '_') if self._separators else key

    def names(self, aliases=True):
        """Accepted names in natural order (``resnet18`` before ``resnet101``)."""
        names = set(self._entries) | (set(self._aliases) if aliases else set())
        return sorted(names, key=natural_key)

    def canonical(self, name):
        """The registered name of ``name`` (any case, or an alias).

        Raises
        ------
        ValueError
            ``name`` is unknown; the message lists the valid names.
        """
        key = self._key(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise ValueError('unknown %s %r; valid names: %s'
                             % (self.kind, name, ', '.join(self.names())))
        return key

    def __contains__(self, name):
        key = self._key(name)
        return self._aliases.get(key, key) in self._entries

    def get(self, name):
        """The :class:`Entry` of ``name``."""
        return self._entries[self.canonical(name)]

    def config(self, name):
        """The configuration registered with ``name``."""
        return self.get(name).config

    def build(self, name, *args, **kwargs):
        """Call the builder of ``name`` with ``args`` and the options it accepts.

        Raises
        ------
        ValueError
            Unknown name.
        TypeError
            An option that no entry of the registry accepts.
        """
        entry = self.get(name)
        if entry.options is None:
            return entry.builder(*args, **kwargs)
        known = {opt for other in self._entries.values() for opt in (other.options or ())}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError('unknown %s option(s) %s; known: %s'
                            % (self.kind, ', '.join(sorted(unknown)),
                               ', '.join(sorted(known))))
        return entry.builder(*args, **{key: value for key, value in kwargs.items()
                                       if key in entry.options})

    def resolve(self, name_or_builder):
        """A builder given by name, or ``name_or_builder`` itself if it is not a string
        (a class such as ``mxnet.gluon.nn.BatchNorm``)."""
        if isinstance(name_or_builder, str):
            return self.get(name_or_builder).builder
        return name_or_builder
