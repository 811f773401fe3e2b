"""Shared pieces of the Python integration tests: a cajald process on a loopback port chosen at
run time, gRPC stubs, spec builders and the `ok / FAIL` check counter.

Used by durability_test.py, security_test.py and hostile_input_test.py (Debian's
/usr/bin/python3 with python3-grpcio). The stub directory (tests/tools/grpc_stubs.sh) must be on
sys.path before this module is imported.
"""
import atexit
import os
import re
import signal
import subprocess
import sys
import time

import grpc
from cajal.v1 import job_spec_pb2, training_service_pb2 as pb, training_service_pb2_grpc as rpc

_servers = []


def _kill_all():
    for s in _servers:
        s.kill9()


atexit.register(_kill_all)
# SIGTERM from ctest's timeout: kill the servers, then exit.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Checks:
    """Prints one line per check; `summary()` prints `N passed, M failed` and returns the exit code."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=''):
        if ok:
            self.passed += 1
            print(f'ok   {name}', flush=True)
        else:
            self.failed += 1
            print(f'FAIL {name} {detail}'.rstrip(), flush=True)
        return ok

    def summary(self):
        print(f'{self.passed} passed, {self.failed} failed', flush=True)
        return 1 if self.failed or not self.passed else 0


class Server:
    """One cajald process. `start()` waits for its `serving ... on 127.0.0.1:PORT` line."""

    def __init__(self, build, data_dir, log_path, *flags, preexec_fn=None):
        self.binary = os.path.join(build, 'bin', 'cajald')
        self.data_dir = data_dir
        self.log_path = log_path
        self.flags = list(flags)
        self.preexec_fn = preexec_fn  # run in the child before exec (resource limits)
        self.proc = None
        self.port = None
        _servers.append(self)

    @property
    def address(self):
        return f'127.0.0.1:{self.port}'

    def start(self, timeout=60):
        log = open(self.log_path, 'ab')
        log.write(b'---- start\n')
        log.flush()
        start = log.tell()
        self.proc = subprocess.Popen(
            [self.binary, '--host', '127.0.0.1', '--port', '0', '--data_dir', self.data_dir,
             '--threads_per_job', '1', '--metrics_port', '0', *self.flags],
            stdout=log, stderr=log, preexec_fn=self.preexec_fn)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, 'rb') as f:
                f.seek(start)
                m = re.search(rb'serving \S+ on 127\.0\.0\.1:(\d+)', f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f'cajald exited with {self.proc.returncode}: {self.log()}')
            time.sleep(0.05)
        raise RuntimeError(f'cajald did not start within {timeout} s: {self.log()}')

    def log(self):
        with open(self.log_path, 'rb') as f:
            return f.read().decode(errors='replace')

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """The exit code, or None if it is still running after `timeout` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def channel(self, credentials=None, target=None, options=()):
        target = target or self.address
        if credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, credentials, options=options)

    def stub(self, **kwargs):
        return rpc.TrainingServiceStub(self.channel(**kwargs))


def xor_spec(epochs=3, checkpoint_every=0, seed=7):
    """A tiny job: xor (4 examples, batch 4: one step per epoch, two metric points per epoch)."""
    s = job_spec_pb2.JobSpec()
    for units, act in ((8, job_spec_pb2.ACTIVATION_KIND_TANH), (2, None)):
        s.model.layers.add().dense.units = units
        if act:
            s.model.layers.add().activation.kind = act
    s.data.train.builtin = 'xor'
    s.optimizer.kind = job_spec_pb2.OPTIMIZER_KIND_ADAM
    s.optimizer.learning_rate = 0.05
    s.training.epochs = epochs
    s.training.batch_size = 4
    s.training.seed = seed
    s.training.threads = 1
    s.training.checkpoint_every_steps = checkpoint_every
    return s


def mnist_spec(max_steps=300, checkpoint_every=25, epochs=1, seed=1):
    """The builtin Fashion-MNIST MLP, cut at `max_steps` (937 steps make an epoch at batch 64)."""
    s = job_spec_pb2.JobSpec()
    s.model.preset = job_spec_pb2.PRESET_MLP
    s.data.train.builtin = 'fashion-mnist'
    s.data.normalize = job_spec_pb2.NORMALIZE_SCALE
    s.optimizer.kind = job_spec_pb2.OPTIMIZER_KIND_ADAM
    s.optimizer.learning_rate = 0.001
    s.training.epochs = epochs
    s.training.batch_size = 64
    s.training.seed = seed
    s.training.threads = 1
    s.training.max_steps = max_steps
    s.training.checkpoint_every_steps = checkpoint_every
    return s


def wait_for(predicate, timeout, interval=0.05):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = predicate()
        except grpc.RpcError:
            v = None
        if v:
            return v
        time.sleep(interval)
    return None


def health(channel, service='', timeout=5):
    """The grpc.health.v1 status name (SERVING, NOT_SERVING, ...) via a raw call, or the error code."""
    # HealthCheckRequest{service} is field 1 (string); the response's status is field 1 (enum).
    req = b'' if not service else b'\x0a' + bytes([len(service)]) + service.encode()
    call = channel.unary_unary('/grpc.health.v1.Health/Check')
    try:
        resp = call(req, timeout=timeout)
    except grpc.RpcError as e:
        return e.code().name
    status = resp[1] if len(resp) >= 2 and resp[0] == 0x08 else 0
    return {0: 'UNKNOWN', 1: 'SERVING', 2: 'NOT_SERVING', 3: 'SERVICE_UNKNOWN'}.get(status, str(status))


def rpc_error(fn):
    """Calls fn(); returns the grpc.RpcError it raised, or None if it succeeded."""
    try:
        fn()
    except grpc.RpcError as e:
        return e
    return None


__all__ = ['Checks', 'Server', 'xor_spec', 'mnist_spec', 'wait_for', 'health', 'rpc_error', 'pb',
           'rpc', 'job_spec_pb2', 'grpc']
