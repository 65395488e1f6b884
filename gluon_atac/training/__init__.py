"""Pieces every training script shares: contexts, checkpoints, metrics, progress, logs."""
from .context import parse_devices
from .checkpoint import atomic_write, save_checkpoint, load_checkpoint, CheckpointError
from .metrics import MetricsLog, read_metrics, plot_history
from .progress import progress
from .logs import setup_logging
from .seeding import seed_everything, epoch_seed
