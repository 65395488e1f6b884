"""``python -m gluon_atac.launch -n WORKERS -s SERVERS [--hosts FILE] -- COMMAND``.

Starts a parameter-server job for MXNet's ``dist_*`` kvstores: one scheduler, ``SERVERS``
servers and ``WORKERS`` workers, each running ``COMMAND`` with the DMLC environment
(``import mxnet`` turns a scheduler or server process into its service loop, so the
training command serves for every role). Without ``--hosts`` all processes run here on
127.0.0.1; with a hosts file (one host per line) they are spread over the hosts with ssh,
the scheduler on the first. Output is streamed with a ``[worker 0]`` style prefix. When a
process fails (an exit code, or a signal such as SIGKILL) the launcher names it, stops
every other one (their whole process groups) and exits with the failing code (``128 +
signal`` for a signal); on success it exits 0. A busy ``--port`` is refused before anything
starts when the job runs here; on a remote scheduler host it cannot be checked.

MXNet's own ``tools/launch.py --launcher local`` does not run on Python >= 3.9.
"""
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from ..errors import UsageError, cli_main
from ..utils.argv import command_parser

__all__ = ['free_port', 'check_local_port', 'exit_description', 'read_hosts',
           'plan_processes', 'ssh_argv', 'Job', 'main']

LOCALHOST = '127.0.0.1'
# Seconds the scheduler and servers get to finish after the last worker exits, and
# processes get between SIGTERM and SIGKILL.
_SERVICE_GRACE = 30.0
_KILL_GRACE = 5.0


def free_port(host=LOCALHOST):
    """A TCP port nothing listens on at ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_local_port(port, host=LOCALHOST):
    """Refuse a scheduler port that cannot be bound at ``host`` right now.

    Parameters
    ----------
    port : int
        The ``--port`` asked for.
    host : str, default 127.0.0.1
        The scheduler host; only a local one can be checked.

    Raises
    ------
    UsageError
        When the port is out of range, in use or cannot be bound for another reason.
    """
    if not 0 < port < 65536:
        raise UsageError('--port must be in 1..65535, not %d' % port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # ZeroMQ listens with SO_REUSEADDR, so the scheduler can take a port whose old
        # connections linger in TIME_WAIT: only a live socket on it makes it busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UsageError('--port %d is in use on %s; choose another or omit --port '
                                 'for a free one' % (port, host))
            raise UsageError('--port %d cannot be bound on %s: %s'
                             % (port, host, err.strerror))


def exit_description(code):
    """How a process ended, from its ``Popen.returncode``.

    Parameters
    ----------
    code : int
        Exit code, or minus the signal number that killed the process.

    Returns
    -------
    str
        ``'exited with 3'`` or ``'was killed by SIGKILL'``.
    """
    if code >= 0:
        return 'exited with %d' % code
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = 'signal %d' % -code
    return 'was killed by %s' % name


def read_hosts(path):
    """Host names of a hosts file: one per line, ``#`` comments and blanks ignored."""
    if not os.path.isfile(path):
        raise FileNotFoundError('hosts file not found: %s' % path)
    with open(path) as handle:
        hosts = [line.split('#')[0].strip() for line in handle]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise UsageError('hosts file %s lists no host' % path)
    return hosts


def plan_processes(num_workers, num_servers, port, hosts=None, interface=None):
    """Label, host and DMLC environment of every process of the job.

    Parameters
    ----------
    num_workers, num_servers : int
    port : int
        Scheduler port (``DMLC_PS_ROOT_PORT``).
    hosts : list of str, optional
        Machines; ``None`` runs everything on 127.0.0.1 over the loopback interface.
    interface : str, optional
        ``DMLC_INTERFACE``; defaults to ``lo`` locally and is left unset over ssh.

    Returns
    -------
    list of (str, str, dict)
        ``(label, host, env)``: the scheduler first, then servers, then workers. Servers
        and workers are dealt round-robin over ``hosts``; the scheduler runs on the first.
    """
    local = hosts is None
    hosts = hosts or [LOCALHOST]
    interface = interface or ('lo' if local else None)
    common = {'DMLC_PS_ROOT_URI': hosts[0], 'DMLC_PS_ROOT_PORT': str(port),
              'DMLC_NUM_SERVER': str(num_servers), 'DMLC_NUM_WORKER': str(num_workers)}
    if interface:
        common['DMLC_INTERFACE'] = interface
    roles = [('scheduler', 'scheduler', hosts[0])]
    roles += [('server', 'server %d' % i, hosts[i % len(hosts)]) for i in range(num_servers)]
    roles += [('worker', 'worker %d' % i, hosts[i % len(hosts)]) for i in range(num_workers)]
    return [(label, host, dict(common, DMLC_ROLE=role, DMLC_NODE_HOST=host))
            for role, label, host in roles]


def ssh_argv(host, env, command, cwd, ssh='ssh'):
    """The ssh command running ``command`` on ``host`` in ``cwd`` with ``env``.

    ``-tt`` gives the remote command a terminal, so closing the connection (when the
    launcher stops a failed job) hangs it up instead of leaving it running.
    """
    exports = ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    remote = 'cd %s && env %s %s' % (shlex.quote(cwd), exports,
                                     ' '.join(shlex.quote(c) for c in command))
    return shlex.split(ssh) + ['-tt', '-o', 'BatchMode=yes', host, remote]


class Job(object):
    """Processes of one distributed run, started in their own process groups.

    Parameters
    ----------
    specs : list of (str, list of str, dict)
        ``(label, argv, extra environment)`` per process.
    out : file, default sys.stdout
        Where prefixed output lines go.
    """

    def __init__(self, specs, out=None):
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.procs, self.threads = [], []
        try:
            for label, argv, env in specs:
                self._start(label, argv, env)
        except BaseException:
            # A command that cannot start must not leave the started ones running.
            self.stop()
            raise

    def _start(self, label, argv, env):
        proc = subprocess.Popen(argv, env=dict(os.environ, **env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        thread = threading.Thread(target=self._pump, args=(label, proc.stdout), daemon=True)
        thread.start()
        self.procs.append((label, proc))
        self.threads.append(thread)

    def _pump(self, label, stream):
        for raw in iter(stream.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            with self.lock:
                self.out.write('[%s] %s\n' % (label, line))
                self.out.flush()
        stream.close()

    def wait(self, poll=0.1):
        """Wait for the workers; stop everything at the first failure.

        A failure is announced as ``[launch] server 0 (pid 1234) was killed by SIGKILL:
        stopping the job``. Processes are polled in launch order (scheduler, servers,
        workers), so when several are found dead at one poll the first of them is named.

        Returns
        -------
        int
            0 when every worker succeeded, else the named process's exit code
            (``128 + signal`` for a signal).
        """
        try:
            while True:
                for label, proc in self.procs:
                    code = proc.poll()
                    if code:
                        self._say('%s (pid %d) %s: stopping the job'
                                  % (label, proc.pid, exit_description(code)))
                        return code if code > 0 else 128 - code
                if all(p.poll() == 0 for label, p in self.procs if label.startswith('worker')):
                    return self._finish_services()
                time.sleep(poll)
        finally:
            self.stop()

    def _finish_services(self):
        deadline = time.time() + _SERVICE_GRACE
        while time.time() < deadline and any(p.poll() is None for _, p in self.procs):
            time.sleep(0.1)
        return 0

    def _say(self, message):
        with self.lock:
            self.out.write('[launch] %s\n' % message)
            self.out.flush()

    def stop(self):
        """SIGTERM every live process group, SIGKILL what is left after a grace period."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            live = [p for _, p in self.procs if p.poll() is None]
            for proc in live:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + _KILL_GRACE
            while live and time.time() < deadline:
                live = [p for p in live if p.poll() is None]
                time.sleep(0.05)
        # Children of a dead leader may remain in its group: clear the groups too.
        for _, proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for thread in self.threads:
            thread.join(timeout=1.0)


def _split_command(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index('--') if '--' in argv else len(argv)
    return argv[:cut], argv[cut + 1:]


def _raise_on_signal(signum, frame):
    raise KeyboardInterrupt


@cli_main
def main(argv=None):
    """Run COMMAND as a scheduler, servers and workers; exit with the job's status."""
    own, command = _split_command(argv)
    parser = command_parser('launch', __doc__.split('\n\n')[1])
    parser.add_argument('-n', '--num-workers', type=int, required=True)
    parser.add_argument('-s', '--num-servers', type=int, default=None,
                        help='default: as many as workers')
    parser.add_argument('-H', '--hosts', default=None,
                        help='file with one host per line: run over ssh')
    parser.add_argument('--port', type=int, default=None,
                        help='scheduler port (default: a free port here); checked to be '
                             'free only when the job runs here, not on a --hosts host')
    parser.add_argument('--interface', default=None,
                        help='DMLC_INTERFACE (default: lo locally; unset over ssh)')
    parser.add_argument('--ssh', default='ssh', help='ssh command, e.g. "ssh -p 2222"')
    parser.add_argument('--cwd', default=os.getcwd(),
                        help='working directory on the hosts (default: this one)')
    args = parser.parse_args(own)
    if not command:
        raise UsageError('give the command after --, e.g. -n 2 -s 1 -- python '
                         'train_imagenet.py --kv-store dist_sync ...')
    servers = args.num_workers if args.num_servers is None else args.num_servers
    if args.num_workers < 1 or servers < 1:
        raise UsageError('-n and -s must be >= 1')
    hosts = read_hosts(args.hosts) if args.hosts else None
    if args.port and hosts is None:
        check_local_port(args.port)
    port = args.port or free_port()
    specs = []
    for label, host, env in plan_processes(args.num_workers, servers, port, hosts,
                                           args.interface):
        if hosts is None:
            specs.append((label, command, env))
        else:
            specs.append((label, ssh_argv(host, env, command, args.cwd, args.ssh), {}))
    signal.signal(signal.SIGTERM, _raise_on_signal)
    job = Job(specs)
    try:
        code = job.wait()
    except KeyboardInterrupt:
        # wait() has stopped the job on its way out.
        code = 130
    sys.exit(code)


if __name__ == '__main__':
    main()
