"""`cajal train --katib-push` against a recording DBManager server (katib_push_test.sh).

usage: katib_push_check.py BUILD_DIR WORK_DIR STUB_DIR

Trains a small MLP on a CSV made here (3 epochs, a validation split and a test file, one
thread, a few seconds) and checks what the server received: one ReportObservationLog per
epoch with loss, accuracy, val_loss and val_accuracy, then one with test_loss and
test_accuracy; every request for the trial named by KATIB_TRIAL_NAME; values equal to the
run's metrics.json; timestamps RFC 3339 in UTC, in order, inside the run. Then: UNAVAILABLE
answers are retried; a db-manager that keeps failing or refuses a call fails the trial
(exit 1) with a message naming it; an unreachable one fails before training; no trial name
is a usage error (exit 2).
"""
import datetime
import json
import os
import random
import re
import socket
import subprocess
import sys
import time

build, work, stubs = sys.argv[1:4]
sys.path.insert(0, stubs)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
from cajald_harness import Checks  # noqa: E402
from katib_db_manager import FakeDbManager  # noqa: E402

CAJAL = os.path.join(build, 'bin', 'cajal')
TRIAL = 'cajal-mlp-push-7c9k2x4b'
EPOCHS = 3
RFC3339 = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$')
checks = Checks()


def write_csv(path, rows, seed):
    """Two Gaussian blobs in 4 dimensions, label last."""
    rng = random.Random(seed)
    with open(path, 'w') as f:
        for _ in range(rows):
            label = rng.randrange(2)
            center = 1.0 if label else -1.0
            f.write(','.join(f'{rng.gauss(center, 1.0):.4f}' for _ in range(4)) + f',{label}\n')


def spec(out):
    path = os.path.join(work, 'push.yaml')
    with open(path, 'w') as f:
        f.write(f"""model:
  layers:
    - dense: {{units: 16}}
    - activation: {{kind: relu}}
    - dense: {{units: 2}}
data:
  train: {{csv: {{path: {work}/train.csv}}}}
  test: {{csv: {{path: {work}/test.csv}}}}
  validation_fraction: 0.2
optimizer: {{kind: adam, learning_rate: 0.01}}
training: {{epochs: {EPOCHS}, batch_size: 32, seed: 1, loss: cross_entropy, threads: 1}}
""")
    return ['--spec', path, '--out', out]


def train(args, trial=TRIAL, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != 'KATIB_TRIAL_NAME'}
    if trial is not None:
        env['KATIB_TRIAL_NAME'] = trial
    start = time.time()
    p = subprocess.run([CAJAL, 'train'] + args, capture_output=True, text=True, env=env,
                       timeout=timeout)
    return p, start, time.time()


def parse_time(stamp):
    return datetime.datetime.strptime(stamp.replace('Z', '+0000'),
                                      '%Y-%m-%dT%H:%M:%S.%f%z').timestamp()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_reports():
    db = FakeDbManager()
    port = db.start()
    out = os.path.join(work, 'out-ok')
    p, start, end = train(spec(out) + ['--katib-push', '--katib-db-manager', f'127.0.0.1:{port}'])
    db.stop()
    if not checks.check('--katib-push run exits 0', p.returncode == 0, p.stderr[-800:]):
        return
    checks.check('the Katib lines are still printed',
                 len(re.findall(r'^epoch=\d+ loss=', p.stdout, re.M)) == EPOCHS, p.stdout)
    reqs = db.requests
    names = [[m[0] for m in r['metrics']] for r in reqs]
    want = [['loss', 'accuracy', 'val_loss', 'val_accuracy']] * EPOCHS + [['test_loss', 'test_accuracy']]
    checks.check(f'one request per epoch, then the test metrics: {names}', names == want)
    checks.check('every request names the trial from KATIB_TRIAL_NAME',
                 [r['trial_name'] for r in reqs] == [TRIAL] * len(reqs))
    # Values: the run's own metric points, in order, to Katib's 9 significant digits.
    points = json.load(open(os.path.join(out, 'metrics.json')))['points']
    recorded = [(n, float(v)) for n, v, _ in db.metrics()]
    expected = [(pt['name'], pt['value']) for pt in points
                if pt['name'] in ('loss', 'accuracy', 'val_loss', 'val_accuracy', 'test_loss', 'test_accuracy')]
    same = len(recorded) == len(expected) and all(
        a[0] == b[0] and abs(a[1] - b[1]) <= 1e-7 * max(1.0, abs(b[1])) for a, b in zip(recorded, expected))
    checks.check('values equal the run\'s metrics.json points', same, f'{recorded} vs {expected}')
    checks.check('values are text Katib parses as floats, 9 significant digits at most',
                 all(re.fullmatch(r'-?\d+(\.\d+)?(e[-+]\d+)?', v) and len(v.replace('-', '').replace('.', '')) <= 14
                     for _, v, _ in db.metrics()))
    stamps = [t for _, _, t in db.metrics()]
    if checks.check('timestamps are RFC 3339 UTC with a fraction', all(RFC3339.match(t) for t in stamps), stamps):
        times = [parse_time(t) for t in stamps]
        checks.check('timestamps are in order and inside the run',
                     times == sorted(times) and start - 1 <= times[0] and times[-1] <= end + 1)
        epoch_times = [parse_time(r['metrics'][0][2]) for r in reqs[:EPOCHS]]
        checks.check('each epoch is stamped when it ended (strictly increasing per epoch)',
                     all(a < b for a, b in zip(epoch_times, epoch_times[1:])), epoch_times)
        # Sent as each epoch ends, not batched at exit: epoch 1's report was already in
        # before epoch 3 ended.
        checks.check('epoch 1 was received before the last epoch ended',
                     reqs[0]['received'] <= epoch_times[-1] + 0.05,
                     f"{reqs[0]['received']} vs {epoch_times[-1]}")


def test_retries():
    db = FakeDbManager(fail_first=2)
    port = db.start()
    p, _, _ = train(spec(os.path.join(work, 'out-retry')) +
                    ['--katib-push', '--katib-db-manager', f'127.0.0.1:{port}'])
    db.stop()
    checks.check('two UNAVAILABLE answers are retried: exit 0', p.returncode == 0, p.stderr[-500:])
    checks.check(f'{db.attempts} calls for {len(db.requests)} recorded reports (2 retries)',
                 len(db.requests) == EPOCHS + 1 and db.attempts == EPOCHS + 3)


def test_keeps_failing():
    db = FakeDbManager(fail_first=-1)
    port = db.start()
    out = os.path.join(work, 'out-down')
    p, start, end = train(spec(out) + ['--katib-push', '--katib-db-manager', f'127.0.0.1:{port}',
                                       '--katib-push-timeout', '2'])
    db.stop()
    checks.check('a db-manager that keeps answering UNAVAILABLE fails the trial: exit 1',
                 p.returncode == 1, f'exit {p.returncode}')
    checks.check('after retrying for --katib-push-timeout (several calls, under 10 s)',
                 db.attempts >= 2 and end - start < 10, f'{db.attempts} calls in {end - start:.1f} s')
    checks.check('the message names the call, the address, the trial and the error',
                 all(s in p.stderr for s in ('ReportObservationLog', f'127.0.0.1:{port}', TRIAL,
                                             'UNAVAILABLE', 'attempts')), p.stderr)
    checks.check('training stopped: no second epoch line, no model written',
                 p.stdout.count('epoch=') == 1 and not os.path.exists(os.path.join(out, 'model.cajal')),
                 p.stdout)


def test_refused():
    db = FakeDbManager(fail_first=-1, fail_code=grpc.StatusCode.INVALID_ARGUMENT)
    port = db.start()
    p, _, _ = train(spec(os.path.join(work, 'out-refused')) +
                    ['--katib-push', '--katib-db-manager', f'127.0.0.1:{port}'])
    db.stop()
    checks.check('a refused report (INVALID_ARGUMENT) fails at once, without retries',
                 p.returncode == 1 and db.attempts == 1 and 'INVALID_ARGUMENT' in p.stderr,
                 f'exit {p.returncode}, {db.attempts} calls: {p.stderr}')


def test_unreachable():
    port = free_port()
    out = os.path.join(work, 'out-unreachable')
    p, start, end = train(spec(out) + ['--katib-push', '--katib-db-manager', f'127.0.0.1:{port}',
                                       '--katib-push-timeout', '1.5'])
    checks.check('an unreachable db-manager fails the trial before training: exit 1',
                 p.returncode == 1 and 'epoch=' not in p.stdout, f'exit {p.returncode}: {p.stdout}')
    checks.check('... within the timeout, naming the address',
                 end - start < 10 and f'cannot reach katib-db-manager at 127.0.0.1:{port}' in p.stderr,
                 p.stderr)


def test_no_trial_name():
    p, _, _ = train(spec(os.path.join(work, 'out-noname')) +
                    ['--katib-push', '--katib-db-manager', '127.0.0.1:1'], trial=None)
    checks.check('--katib-push without KATIB_TRIAL_NAME is a usage error: exit 2, named',
                 p.returncode == 2 and 'KATIB_TRIAL_NAME' in p.stderr, f'exit {p.returncode}: {p.stderr}')


write_csv(os.path.join(work, 'train.csv'), 600, seed=1)
write_csv(os.path.join(work, 'test.csv'), 200, seed=2)
test_reports()
test_retries()
test_keeps_failing()
test_refused()
test_unreachable()
test_no_trial_name()
sys.exit(checks.summary())
