#!/usr/bin/python3
"""Data-parallel `cajal train` under OpenMPI's mpirun, 2 ranks × 1 thread.

  data_parallel_test.py BUILD_DIR WORK_DIR
"""
import os
import re
import signal
import subprocess
import sys
import time

BUILD, WORK = sys.argv[1], sys.argv[2]
CAJAL = os.path.join(BUILD, 'bin', 'cajal')
MPIRUN = ['mpirun', '--allow-run-as-root', '--oversubscribe', '-np', '2']
failures = []


def check(name, ok, detail=''):
    print(('ok   ' if ok else 'FAIL ') + name + ('' if ok else f'\n     {detail}'), flush=True)
    if not ok:
        failures.append(name)


def spec_file(name, text):
    path = os.path.join(WORK, name + '.yaml')
    with open(path, 'w') as f:
        f.write(text)
    return path


def train(spec, out, *extra, ranks=1, timeout=300):
    cmd = (MPIRUN if ranks == 2 else []) + [CAJAL, 'train', '--spec', spec, '--out', os.path.join(WORK, out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def step_losses(stdout):
    return [float(m.group(1)) for m in re.finditer(r'^epoch=\d+ step=\d+ loss=([\d.]+)$', stdout, re.M)]


def final(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith('test_loss=')]
    return re.sub(r' samples_per_sec=.*', '', lines[-1]) if lines else ''


def same_curve(name, spec, per_rank_batch, sync_extra=()):
    """2 ranks of batch B against 1 process of batch 2B: the same loss every 10 steps over 200
    steps (to the printed 4 decimals, give or take float summation order)."""
    two = train(spec, name + '-2', '--set', f'training.batch_size={per_rank_batch}', *sync_extra, ranks=2)
    one = train(spec, name + '-1', '--set', f'training.batch_size={2 * per_rank_batch}', *sync_extra)
    check(f'{name}: both runs succeed', two.returncode == 0 and one.returncode == 0, two.stderr[-2000:] + one.stderr)
    a, b = step_losses(two.stdout), step_losses(one.stdout)
    check(f'{name}: 20 loss points each', len(a) == 20 and len(b) == 20, f'{len(a)} {len(b)}')
    worst = max((abs(x - y) for x, y in zip(a, b)), default=1)
    check(f'{name}: 2×{per_rank_batch} and 1×{2 * per_rank_batch} give the same loss curve (max diff {worst:.4f})',
          worst <= 2e-3, f'{a}\n     {b}')
    check(f'{name}: replicas bit-identical after training',
          re.search(r'parameters identical on all 2 ranks \(digest [0-9a-f]{16}\)', two.stderr) is not None,
          two.stderr[-2000:])
    check(f'{name}: rank 0 alone prints the Katib lines', two.stdout.count('test_loss=') == 1, two.stdout)
    return a, b


MLP = ('model: {layers: [{dense: {units: 64}}, {activation: {kind: relu}}, {dense: {units: 10}}]}\n'
       'data: {train: {builtin: fashion-mnist}, normalize: scale}\n'
       'optimizer: {kind: momentum, learning_rate: 0.05}\n'
       'training: {epochs: 1, batch_size: 32, seed: 3, threads: 1, max_steps: 200, log_every_steps: 10}\n')
CNN = ('model: {layers: [{conv2d: {filters: 8, kernel: 5, padding: 2}}, {activation: {kind: relu}},'
       ' {max_pool2d: {kernel: 2}}, {flatten: {}}, {dense: {units: 10}}]}\n'
       'data: {train: {builtin: fashion-mnist}, normalize: scale}\n'
       'optimizer: {kind: adam, learning_rate: 0.002}\n'
       'training: {epochs: 1, batch_size: 16, seed: 5, threads: 1, max_steps: 200, log_every_steps: 10}\n')
BN = ('model: {layers: [{dense: {units: 32}}, {batch_norm: {}}, {activation: {kind: relu}}, {dense: {units: 10}}]}\n'
      'data: {train: {builtin: fashion-mnist}, normalize: scale}\n'
      'optimizer: {kind: sgd, learning_rate: 0.1}\n'
      'training: {epochs: 1, batch_size: 16, seed: 2, threads: 1, max_steps: 200, log_every_steps: 10}\n')


def curves():
    same_curve('mlp', spec_file('mlp', MLP), 32)
    same_curve('cnn', spec_file('cnn', CNN), 16)
    bn = spec_file('bn', BN)
    same_curve('sync batch norm', bn, 16, ('--set', 'training.sync_batch_norm=true'))
    # Without synchronization each rank normalizes its own 16 examples: another curve.
    two = train(bn, 'bn-local', '--set', 'training.batch_size=16', ranks=2)
    one = train(bn, 'bn-one', '--set', 'training.batch_size=32')
    a, b = step_losses(two.stdout), step_losses(one.stdout)
    check('per-rank batch norm statistics give a different curve than one process',
          two.returncode == 0 and len(a) == len(b) == 20 and max(abs(x - y) for x, y in zip(a, b)) > 2e-3,
          f'{a}\n     {b}')


def rank1_pid(spec):
    """The pid of rank 1 of the `cajal train --spec SPEC` running under mpirun, or None."""
    for pid in subprocess.run(['pgrep', '-f', f'{CAJAL} train --spec {spec}'], capture_output=True,
                              text=True).stdout.split():
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                if b'OMPI_COMM_WORLD_RANK=1\0' in f.read():
                    return int(pid)
        except OSError:
            pass
    return None


def kill_a_rank():
    """Killing one rank ends the job on every rank within seconds, naming the rank."""
    spec = spec_file('long', MLP.replace('max_steps: 200', 'max_steps: 1000000').replace('epochs: 1', 'epochs: 100'))
    p = subprocess.Popen(MPIRUN + [CAJAL, 'train', '--spec', spec, '--out', os.path.join(WORK, 'long')],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    rank1 = None
    while rank1 is None and time.monotonic() < deadline:
        time.sleep(0.5)
        rank1 = rank1_pid(spec)
    time.sleep(2)  # well into training
    check('rank 1 found', rank1 is not None)
    if rank1 is None:
        p.kill()
        return
    start = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    out, _ = p.communicate(timeout=60)
    took = time.monotonic() - start
    check(f'the job ends on every rank, non-zero, in {took:.1f} s (< 30 s)', p.returncode != 0 and took < 30,
          f'exit {p.returncode}')
    check('the message names the rank that died', re.search(r'rank 1 .*(signal 9|Killed)', out) is not None,
          out[-1500:])


def resume():
    """A 2-rank run killed mid-epoch resumes from the shared checkpoint directory and ends with
    the model of an uninterrupted 2-rank run."""
    spec = spec_file('resume', MLP.replace('max_steps: 200', 'max_steps: 300, checkpoint_every_steps: 50'))
    whole = train(spec, 'whole2', ranks=2)
    check('the uninterrupted 2-rank run', whole.returncode == 0, whole.stderr[-1500:])
    ckpt = os.path.join(WORK, 'ckpt2')
    p = subprocess.Popen(MPIRUN + [CAJAL, 'train', '--spec', spec, '--out', os.path.join(WORK, 'cut2'),
                                   '--checkpoint_dir', ckpt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    step = 0
    for line in p.stdout:
        m = re.match(r'epoch=\d+ step=(\d+)', line)
        step = int(m.group(1)) if m else step
        if step >= 120 and os.path.exists(os.path.join(ckpt, 'checkpoint.cajal')):
            break
    p.kill()  # mpirun: the ranks go with it
    p.wait(timeout=60)
    subprocess.run(['pkill', '-9', '-f', '--', f'--checkpoint_dir {ckpt}'])
    check(f'cut at step {step} with a checkpoint', os.path.exists(os.path.join(ckpt, 'checkpoint.cajal')))
    again = train(spec, 'cut2', '--checkpoint_dir', ckpt, ranks=2)
    check('the 2-rank rerun resumes', again.returncode == 0 and 'resuming from' in again.stderr, again.stderr[-1500:])
    with open(os.path.join(WORK, 'cut2', 'model.cajal'), 'rb') as a, open(os.path.join(WORK, 'whole2', 'model.cajal'),
                                                                         'rb') as b:
        check('the resumed 2-rank model is bit-identical to the uninterrupted one', a.read() == b.read())
    check('and the same test metrics', final(again.stdout) == final(whole.stdout),
          f'{final(again.stdout)!r} vs {final(whole.stdout)!r}')


def sigterm_one_rank():
    """SIGTERM to one rank (its pod evicted) stops every rank at the same step boundary: rank 0
    writes the checkpoint, the ranks exit 143, and a rerun finishes with the uninterrupted
    2-rank model."""
    spec = spec_file('resume', MLP.replace('max_steps: 200', 'max_steps: 300, checkpoint_every_steps: 50'))
    ckpt = os.path.join(WORK, 'ckpt-term2')
    p = subprocess.Popen(MPIRUN + [CAJAL, 'train', '--spec', spec, '--out', os.path.join(WORK, 'term2'),
                                   '--checkpoint_dir', ckpt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rank1 = None
    lines = []
    for line in p.stdout:
        lines.append(line)
        if rank1 is None and re.match(r'epoch=\d+ step=(6|7|8|9)0 ', line):
            rank1 = rank1_pid(spec)
            if rank1 is not None:
                os.kill(rank1, signal.SIGTERM)
    p.wait(timeout=60)
    out = ''.join(lines)
    m = re.search(r'stopped by SIGTERM at step (\d+)', out)
    check('SIGTERM to rank 1: rank 0 reports the stop and the checkpoint',
          rank1 is not None and m is not None and os.path.exists(os.path.join(ckpt, 'checkpoint.cajal')), out[-2000:])
    check('... and the job exits 143', p.returncode == 143, f'exit {p.returncode}')
    again = train(spec, 'term2', '--checkpoint_dir', ckpt, ranks=2)
    with open(os.path.join(WORK, 'term2', 'model.cajal'), 'rb') as a, open(os.path.join(WORK, 'whole2', 'model.cajal'),
                                                                          'rb') as b:
        check('the rerun after SIGTERM ends with the uninterrupted 2-rank model',
              again.returncode == 0 and a.read() == b.read(), again.stderr[-1500:])


def refusals():
    hf = spec_file('hf', 'model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}\n'
                   'data: {train: {builtin: xor}}\noptimizer: {kind: hessian_free}\ntraining: {epochs: 1, batch_size: 4}\n')
    r = train(hf, 'hf', ranks=2)
    check('hessian_free under mpirun: exit 2, a clear message', r.returncode == 2 and
          'hessian_free does not run data-parallel (this job has 2 ranks)' in r.stderr, r.stderr[-1500:])


def main():
    refusals()
    curves()
    kill_a_rank()
    resume()
    sigterm_one_rank()
    if failures:
        print(f'{len(failures)} check(s) failed: {failures}')
        sys.exit(1)
    print('all checks passed')


if __name__ == '__main__':
    main()
