#!/usr/bin/python3
"""`cajal train` and memory: estimate vs peak RSS, refusals, --dry-run, resume after a kill.

  train_resources_test.py BUILD_DIR WORK_DIR
"""
import os
import re
import signal
import subprocess
import sys
import time

BUILD, WORK = sys.argv[1], sys.argv[2]
CAJAL = os.path.join(BUILD, 'bin', 'cajal')
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'examples')
failures = []


def check(name, ok, detail=''):
    print(('ok   ' if ok else 'FAIL ') + name + ('' if ok else f'\n     {detail}'), flush=True)
    if not ok:
        failures.append(name)


def cajal(*args, timeout=600):
    return subprocess.run([CAJAL, *args], capture_output=True, text=True, timeout=timeout)


def spec_file(name, text):
    path = os.path.join(WORK, name + '.yaml')
    with open(path, 'w') as f:
        f.write(text)
    return path


def estimate_vs_rss():
    """The estimate of --dry-run within 25% of the peak RSS a short run measures. Batch 60
    divides the 60,000 training images, so 20 steps and the test evaluation create every plan
    a full run creates (a full batch, the test set's full and last batches)."""
    for name in ['mlp', 'cnn', 'lstm', 'adding', 'autoencoder-hf']:
        spec = os.path.join(EXAMPLES, name + '.yaml')
        common = ['--spec', spec, '--set', 'training.batch_size=60', '--set', 'training.threads=1']
        dry = cajal('train', *common, '--dry-run')
        m = re.search(r'host_bytes=(\d+)', dry.stdout)
        check(f'{name}: --dry-run prints the estimate', dry.returncode == 0 and m is not None,
              dry.stdout + dry.stderr)
        if m is None:
            continue
        run = cajal('train', *common, '--set', 'training.epochs=1', '--set', 'training.max_steps=20', '--out',
                    os.path.join(WORK, 'rss-' + name))
        r = re.search(r'peak_rss_mb=([\d.]+)', run.stdout)
        if run.returncode != 0 or r is None:
            check(f'{name}: the short run', False, run.stdout + run.stderr)
            continue
        estimate, rss = int(m.group(1)), float(r.group(1)) * (1 << 20)
        error = (estimate - rss) / rss
        check(f'{name}: estimate {estimate / 1e6:.1f} MB vs peak RSS {rss / 1e6:.1f} MB ({error:+.0%}), within 25%',
              abs(error) <= 0.25)


# name: (layers, extra flags, the biggest part the message must name)
HUGE = {
    'huge dense': ('[{dense: {units: 1000000}}, {dense: {units: 1000000}}, {dense: {units: 10}}]', [],
                   'model.layers.1.dense: 4.0 TB of parameters'),
    'huge lstm': ('[{lstm: {units: 200000}}, {dense: {units: 10}}]', [], 'model.layers.0.lstm: '),
    'huge conv': ('[{conv2d: {filters: 100000, kernel: 3}}, {flatten: {}}, {dense: {units: 10}}]', [],
                  'model.layers.0.conv2d: '),
    'huge batch': ('[{dense: {units: 100000}}, {dense: {units: 10}}]', ['--set', 'training.batch_size=60000'],
                   'model.layers.0.dense: '),
}
DATA = ('data: {train: {builtin: fashion-mnist}, normalize: scale}\noptimizer: {kind: sgd}\n'
        'training: {epochs: 1, batch_size: 64}\n')


def refusals():
    """Specs that pass validation but cannot fit: refused before training with exit 2, the
    estimate, the budget and the biggest consumer named; the process never dies of a signal."""
    for name, (layers, flags, biggest) in HUGE.items():
        path = spec_file(name.replace(' ', '_'), f'model: {{layers: {layers}}}\n' + DATA)
        start = time.monotonic()
        r = cajal('train', '--spec', path, *flags, '--out', os.path.join(WORK, 'huge'), timeout=120)
        took = time.monotonic() - start
        check(f'{name}: exit 2, not a crash', r.returncode == 2, f'exit {r.returncode} {r.stderr!r}')
        check(f'{name}: the message names the estimate, the budget and {biggest!r}',
              'needs an estimated' in r.stderr and 'memory budget is' in r.stderr and biggest in r.stderr, r.stderr)
        check(f'{name}: refused before loading anything ({took:.1f} s)', took < 20, f'{took:.1f} s')
    small = spec_file('small', 'model: {layers: [{dense: {units: 32}}, {dense: {units: 10}}]}\n' + DATA)
    r = cajal('train', '--spec', small, '--max_memory', '20MB', '--out', os.path.join(WORK, 'small'))
    check('--max_memory 20MB refuses the small MLP (the data alone is 55 MB)',
          r.returncode == 2 and 'memory budget is 20.0 MB (--max_memory)' in r.stderr, r.stderr)
    r = cajal('train', '--spec', small, '--max_memory', 'lots', '--out', os.path.join(WORK, 'small'))
    check('--max_memory lots: exit 2 naming the flag', r.returncode == 2 and '--max_memory' in r.stderr, r.stderr)
    r = cajal('train', '--spec', small, '--dry-run')
    check('--dry-run: the parameter count (784·32+32 + 32·10+10 = 25450) and fits=yes',
          r.returncode == 0 and 'parameters=25450 ' in r.stdout and 'fits=yes' in r.stdout, r.stdout + r.stderr)
    check('--dry-run trains nothing', not os.path.exists(os.path.join(WORK, 'small', 'model.cajal')))
    r = cajal('train', '--spec', spec_file('huge_dense', f'model: {{layers: {HUGE["huge dense"][0]}}}\n' + DATA),
              '--dry-run')
    check('--dry-run of a spec that does not fit: the table, fits=no, exit 2',
          r.returncode == 2 and 'fits=no' in r.stdout and 'model.layers.0.dense' in r.stdout, r.stdout + r.stderr)


RESUME_SPEC = ('model: {layers: [{dense: {units: 64}}, {activation: {kind: relu}}, {dropout: {rate: 0.2}},'
               ' {dense: {units: 10}}]}\n'
               'data: {train: {builtin: fashion-mnist}, normalize: scale, validation_fraction: 0.1}\n'
               'optimizer: {kind: adam, learning_rate: 0.002}\n'
               'training: {epochs: 2, batch_size: 100, seed: 4, threads: 1, checkpoint_every_steps: 40,'
               ' max_steps: 700}\n')


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def run_until_checkpoint_then(sig, ckpt_dir, out, spec, after_step):
    """Starts `cajal train --checkpoint_dir`, waits until the checkpoint written at
    `after_step` or later exists, and sends `sig`."""
    p = subprocess.Popen([CAJAL, 'train', '--spec', spec, '--out', out, '--checkpoint_dir', ckpt_dir,
                          '--set', 'training.log_every_steps=10'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    step = 0
    for line in p.stdout:
        m = re.match(r'.*step=(\d+)', line)
        if m:
            step = int(m.group(1))
        if step >= after_step and os.path.exists(os.path.join(ckpt_dir, 'checkpoint.cajal')):
            break
        if time.monotonic() > deadline:
            break
    p.send_signal(sig)
    rest, err = p.communicate(timeout=120)
    return p.returncode, step, err


def resume():
    spec = spec_file('resume', RESUME_SPEC)
    whole = os.path.join(WORK, 'whole')
    r = cajal('train', '--spec', spec, '--out', whole)
    check('the uninterrupted run', r.returncode == 0, r.stderr)
    final = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''

    # SIGKILL mid-epoch (epoch 1 has 540 steps), then a rerun with the same directory.
    ckpt, out = os.path.join(WORK, 'ckpt-kill'), os.path.join(WORK, 'killed')
    code, step, _ = run_until_checkpoint_then(signal.SIGKILL, ckpt, out, spec, after_step=130)
    check(f'killed with SIGKILL at step {step} (mid-epoch)', code == -signal.SIGKILL and 120 <= step < 540,
          f'exit {code} step {step}')
    r = cajal('train', '--spec', spec, '--out', out, '--checkpoint_dir', ckpt)
    check('the rerun resumes from the checkpoint', r.returncode == 0 and 'resuming from' in r.stderr,
          r.stdout + r.stderr)
    check('the resumed model is bit-identical to the uninterrupted run',
          os.path.exists(os.path.join(out, 'model.cajal')) and
          read(os.path.join(out, 'model.cajal')) == read(os.path.join(whole, 'model.cajal')))
    resumed_final = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''
    strip = lambda s: re.sub(r' samples_per_sec=.*', '', s)  # noqa: E731
    check('the same final test metrics', strip(resumed_final) == strip(final), f'{resumed_final!r} vs {final!r}')
    check('a finished run removes its checkpoint', not os.path.exists(os.path.join(ckpt, 'checkpoint.cajal')))

    # SIGTERM: the run checkpoints where it stops and exits 143; the rerun finishes the same.
    ckpt, out = os.path.join(WORK, 'ckpt-term'), os.path.join(WORK, 'termed')
    code, step, err = run_until_checkpoint_then(signal.SIGTERM, ckpt, out, spec, after_step=50)
    check(f'SIGTERM at step {step}: exit 143 and a checkpoint', code == 143 and
          os.path.exists(os.path.join(ckpt, 'checkpoint.cajal')) and 'stopped by SIGTERM' in err, f'exit {code} {err!r}')
    r = cajal('train', '--spec', spec, '--out', out, '--checkpoint_dir', ckpt)
    check('after SIGTERM the rerun is bit-identical too', r.returncode == 0 and
          read(os.path.join(out, 'model.cajal')) == read(os.path.join(whole, 'model.cajal')), r.stderr)

    # A checkpoint of another spec is refused, and kept.
    ckpt = os.path.join(WORK, 'ckpt-other')
    code, _, _ = run_until_checkpoint_then(signal.SIGKILL, ckpt, os.path.join(WORK, 'o1'), spec, after_step=40)
    r = cajal('train', '--spec', spec, '--out', os.path.join(WORK, 'o2'), '--checkpoint_dir', ckpt,
              '--set', 'optimizer.learning_rate=0.001')
    check('a checkpoint of another spec: exit 2 naming it', r.returncode == 2 and 'different spec' in r.stderr and
          'checkpoint.cajal' in r.stderr, r.stderr)
    check('... and the checkpoint is left as it was', os.path.exists(os.path.join(ckpt, 'checkpoint.cajal')))


def main():
    refusals()
    resume()
    estimate_vs_rss()
    if failures:
        print(f'{len(failures)} check(s) failed: {failures}')
        sys.exit(1)
    print('all checks passed')


if __name__ == '__main__':
    main()
