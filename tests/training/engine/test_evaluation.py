"""Evaluation shows a progress bar with images/s on a terminal, and nothing elsewhere."""
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

SCRIPT = '''
import mxnet as mx
from gluon_atac.training.engine.evaluation import evaluate
net = mx.gluon.nn.Dense(3, in_units=4)
net.initialize()
batches = [(mx.nd.ones((8, 4)), mx.nd.zeros((8,))) for _ in range(5)]
print(evaluate(net, batches, mx.cpu(), progress_label='evaluate')['images'])
'''


def test_the_bar_counts_images_on_a_terminal_only():
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, in which tqdm draws nothing.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0, 0))
    child = subprocess.Popen([sys.executable, '-c', SCRIPT], stdout=subprocess.PIPE,
                             stderr=follower, universal_newlines=True)
    os.close(follower)
    shown = b''
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal is gone once the child has exited
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert child.stdout.read().strip() == '40' and child.wait() == 0
    text = shown.decode(errors='replace')
    assert 'evaluate' in text and 'img/s' in text
    piped = subprocess.run([sys.executable, '-c', SCRIPT], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert piped.stdout.strip() == '40' and 'img/s' not in piped.stderr
