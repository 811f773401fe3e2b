#!/usr/bin/python3
"""cajal against the PyTorch peer (../shared/bench/torch_peer.py), measured in the same run.

  bench/vs_torch.py mlp [--steps 1500] [--threads 2] [--batch 64] [--repeat 3]

Runs the peer's `throughput MODEL` and `cajal train` on the same model, data (Fashion-MNIST,
pixels scaled to [0,1]), optimizer (Adam 1e-3), batch and threads, one after the other (never
at once: OpenMP oversubscription would distort both), `--repeat` times each, and prints each
run's samples/s and peak RSS, the best of each, and the ratios cajal/peer.
Both sides time only their training steps (the batch gather, forward, loss, backward and
update), not data loading or evaluation; peak RSS is each process's ru_maxrss.
Models: mlp (784-256-128-10 ReLU). Other models join with the CNN and recurrent issues.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.environ.get('CAJAL_TORCH_PEER', os.path.join(ROOT, '..', 'shared', 'bench', 'torch_peer.py'))
SPECS = {'mlp': 'examples/mlp.yaml'}


def run_with_rss(cmd):
    """Runs cmd; returns its stdout and its peak RSS in MiB (os.wait4: this child's rusage)."""
    with tempfile.TemporaryFile(mode='w+') as out, tempfile.TemporaryFile(mode='w+') as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f'{" ".join(cmd)} failed ({proc.returncode}):\n{err.read()}')
        out.seek(0)
        return out.read(), usage.ru_maxrss / 1024.0


def value(text, key):
    m = re.search(rf'\b{key}=([0-9.eE+-]+)', text)
    if not m:
        sys.exit(f'no {key}= in output:\n{text}')
    return float(m.group(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('model', choices=sorted(SPECS))
    p.add_argument('--steps', type=int, default=1500)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--cajal', default=os.path.join(ROOT, 'build', 'bin', 'cajal'))
    a = p.parse_args()
    out_dir = tempfile.mkdtemp()
    cajal_cmd = [a.cajal, 'train', '--spec', os.path.join(ROOT, SPECS[a.model]), '--out', out_dir,
                 '--set', 'training.epochs=1000', '--set', f'training.max_steps={a.steps}',
                 '--set', f'training.batch_size={a.batch}', '--set', f'training.threads={a.threads}']
    peer_cmd = ['/usr/bin/python3', PEER, 'throughput', a.model, '--batch', str(a.batch),
                '--threads', str(a.threads), '--steps', str(a.steps)]
    best = {'cajal': (0, 0), 'torch': (0, 0)}
    for i in range(a.repeat):
        for name, cmd in (('torch', peer_cmd), ('cajal', cajal_cmd)):
            out, rss = run_with_rss(cmd)
            sps = value(out, 'samples_per_sec')
            print(f'run={i + 1} {name}: samples_per_sec={sps:.0f} peak_rss_mb={rss:.1f}')
            prev = best[name]
            best[name] = (max(prev[0], sps), rss if prev[1] == 0 else min(prev[1], rss))
    (c_sps, c_rss), (t_sps, t_rss) = best['cajal'], best['torch']
    print(f'model={a.model} batch={a.batch} threads={a.threads} steps={a.steps} '
          f'cajal_samples_per_sec={c_sps:.0f} torch_samples_per_sec={t_sps:.0f} '
          f'speedup={c_sps / t_sps:.2f} cajal_peak_rss_mb={c_rss:.1f} torch_peak_rss_mb={t_rss:.1f} '
          f'rss_ratio={c_rss / t_rss:.2f}')


if __name__ == '__main__':
    main()
