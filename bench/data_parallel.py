#!/usr/bin/python3
"""Data-parallel scaling: 2 ranks × 1 thread under mpirun against 1 rank × 1 thread.

  bench/data_parallel.py [mlp|cnn|lstm ...] [--repeat 3]

For each model (the examples of bench/vs_torch.py: examples/mlp.yaml, cnn.yaml, lstm.yaml,
Adam 1e-3, batch 64 per rank), runs `cajal train` in one process with one thread and
`mpirun -np 2 cajal train` with one thread per rank, alternately, `--repeat` times each, and
prints each run's samples/s (training steps only; the 2-rank figure counts both ranks'
examples, timed on rank 0, waits for gradient sums included), the time rank 0 waited for the
gradient sums per step (the allreduce not hidden behind the backward pass), the medians and
the ratio 2 ranks / 1 rank. Each rank takes the same per-rank batch (PyTorch DDP's
convention), so the 2-rank run trains on twice the examples per step.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAJAL = os.path.join(ROOT, 'build', 'bin', 'cajal')
SPECS = {'mlp': 'examples/mlp.yaml', 'cnn': 'examples/cnn.yaml', 'lstm': 'examples/lstm.yaml'}
STEPS = {'mlp': 2000, 'cnn': 150, 'lstm': 400}
MPIRUN = ['mpirun', '--allow-run-as-root', '--oversubscribe', '--bind-to', 'core', '-np', '2']


def run(model, ranks, out):
    cmd = [CAJAL, 'train', '--spec', os.path.join(ROOT, SPECS[model]), '--out', out, '--set',
           'training.threads=1', '--set', f'training.max_steps={STEPS[model]}', '--set', 'training.epochs=1',
           '--set', 'training.batch_size=64']
    if ranks == 2:
        cmd = MPIRUN + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f'{model} with {ranks} rank(s) failed:\n{r.stderr[-2000:]}')
    samples = float(re.search(r'samples_per_sec=([\d.]+)', r.stdout).group(1))
    wait = re.search(r'([\d.]+) ms per step waiting', r.stderr)
    return samples, float(wait.group(1)) if wait else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('models', nargs='*', default=['mlp', 'cnn', 'lstm'])
    p.add_argument('--repeat', type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in a.models:
            one, two, waits = [], [], []
            for i in range(a.repeat):
                one.append(run(model, 1, os.path.join(tmp, 'one'))[0])
                s, w = run(model, 2, os.path.join(tmp, 'two'))
                two.append(s)
                waits.append(w)
                print(f'{model} run {i + 1}: 1 rank {one[-1]:,.0f} samples/s, 2 ranks {two[-1]:,.0f} samples/s '
                      f'({two[-1] / one[-1]:.2f}x), gradient-sum wait {w:.2f} ms/step', flush=True)
            m1, m2 = statistics.median(one), statistics.median(two)
            print(f'{model}: median 1 rank {m1:,.0f}, 2 ranks {m2:,.0f} samples/s, ratio {m2 / m1:.2f}x; '
                  f'median wait for gradient sums {statistics.median(waits):.2f} ms/step')


if __name__ == '__main__':
    main()
