"""The dist_sync-against-Horovod benchmark's two jobs (each is a real two-process job, too
slow for the suite; test_horovod.py and test_launch.py run both kinds)."""
import importlib.util
import os

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'distributed_speed.py')


def test_both_jobs_run_the_same_training_command():
    spec = importlib.util.spec_from_file_location('distributed_speed', SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    flags = bench.NETWORK + ['--data-dir', 'DIR']
    jobs = bench.commands(flags, 2)
    launch, horovod = jobs['dist_sync'], jobs['horovod']
    assert launch[launch.index('--') + 1:] == horovod[horovod.index('--gloo') + 1:-2] + [
        '--kv-store', 'dist_sync']
    assert horovod[-2:] == ['--kv-store', 'horovod']
    assert launch[launch.index('-n') + 1] == horovod[horovod.index('-np') + 1] == '2'
