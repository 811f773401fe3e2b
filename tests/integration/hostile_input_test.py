#!/usr/bin/python3
"""Hostile input: a table of malformed specs and requests sent to a running cajald, each with the
gRPC code and message fragment it must get; after every case the server must still answer
GetJob and health.

  hostile_input_test.py STUB_DIR BUILD_DIR WORK_DIR

Covers wrong YAML types through `cajal submit --spec` (the CLI's own parser: exit code 2 and
the field path), negative sizes, NaN/inf, huge shapes (10^9 units, 10^4 layers; 10^7 layers is
a message over the size limit), unknown enum numbers, empty model, preset+layers, data files
outside the data roots or missing, unknown builtin, hostile ids (`../`, NUL, length, case) on
every method that takes one (DeleteDataset too), paging fields, request_id length, oversize
messages (the 4 MiB default and a lowered --max_message_bytes), protobuf garbage on raw calls
and the watcher limit (--max_watchers_per_job 2).

Resources (docs/resources.md): specs that validate but could never fit in memory (two dense
layers of 10^6 units, an lstm of 200000 units, a conv2d of 100000 filters, batch_size 60000
with a 100000-unit layer) are INVALID_ARGUMENT at submit with the estimate, the budget and the
biggest part, and nothing is stored; a restart on the same data dir serves; with
--max_job_memory far above the machine they are RESOURCE_EXHAUSTED (not now); a job that passes
the estimate but whose allocations fail (cajald under an address-space limit, RLIMIT_AS, lower
than the --max_job_memory it was given) FAILS with the core's message while the server serves
on; bad --max_job_memory and --gpus values stop cajald with exit 2.
"""
import resource
import os
import subprocess
import sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools'))
from cajal.v1 import dataset_pb2 as dpb  # noqa: E402
from cajald_harness import (Checks, Server, grpc, health, job_spec_pb2, pb, rpc_error,  # noqa: E402
                            wait_for, xor_spec)

BUILD, WORK = sys.argv[2], sys.argv[3]
C = grpc.StatusCode
t = Checks()


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def submit_with_layers(n):
    """SubmitJobRequest bytes with `n` flatten layers, built without n Python objects."""
    layer = job_spec_pb2.Layer()
    layer.flatten.SetInParent()
    one = field(2, layer.SerializeToString())  # Model.layers = 2
    model = field(1, one * n)  # JobSpec.model = 1
    rest = xor_spec()
    rest.ClearField('model')
    return field(1, model + rest.SerializeToString())  # SubmitJobRequest.spec = 1


def spec_with(mutate):
    s = xor_spec()
    mutate(s)
    return s


def main():
    data = os.path.join(WORK, 'data')
    server = Server(BUILD, data, os.path.join(WORK, 'cajald.log'), '--max_watchers_per_job', '2').start()
    ch = server.channel()
    stub = server.stub()
    raw_submit = ch.unary_unary('/cajal.v1.TrainingService/SubmitJob')
    raw_get = ch.unary_unary('/cajal.v1.TrainingService/GetJob')
    done = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2)), timeout=30)
    t.check('a small job succeeds first', wait_for(
        lambda: stub.GetJob(pb.GetJobRequest(id=done.id), timeout=5).state == pb.JOB_STATE_SUCCEEDED, 60))

    refl = rpc_error(lambda: next(ch.stream_stream('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo')(
        iter([b'\x3a\x00']), timeout=10)))
    t.check('reflection answers when no token is configured', refl is None, refl)

    def alive():
        """'' when the server answers GetJob and health, else what went wrong."""
        if server.proc.poll() is not None:
            return f'cajald exited with {server.proc.returncode}'
        try:
            stub.GetJob(pb.GetJobRequest(id=done.id), timeout=10)
        except grpc.RpcError as e:
            return f'GetJob after the case: {e.code()} {e.details()}'
        h = health(ch)
        return '' if h == 'SERVING' else f'health after the case: {h}'

    def expect(name, fn, code, fragment):
        e = rpc_error(fn)
        got = 'OK' if e is None else f'{e.code().name} {e.details()!r}'
        ok = e is not None and e.code() == code and fragment in (e.details() or '')
        after = alive()
        t.check(f'{name}: {code.name} "{fragment}"', ok and not after,
                f'got {got}' + (f'; {after}' if after else ''))

    def submit(mutate, request_id=''):
        return lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=spec_with(mutate), request_id=request_id),
                                      timeout=60)

    # ---- the CLI's own parser: exit code 2 and the field path, nothing reaches the server.
    cli = os.path.join(BUILD, 'bin', 'cajal')
    for name, text, fragment in [
        ('string for an integer', 'training: {epochs: "three", batch_size: 4}', 'training.epochs: expected an integer'),
        ('map for a list', 'model: {layers: {dense: 3}}', 'model.layers: expected a list'),
        ('list for a number', 'optimizer: {learning_rate: [1]}', 'optimizer.learning_rate: expected a number'),
        ('unknown field', 'training: {epoch: 3}', 'training.epoch: unknown field'),
        ('not YAML', 'model: {layers: [dense', 'not valid YAML or JSON'),
        ('integer out of range', 'model: {layers: [{dense: {units: 99999999999}}]}', 'integer out of range'),
        # 130 kB of aliases to one 100 kB label would expand to 300 MB.
        ('YAML alias expansion', 'model: {preset: mlp}\nlabels:\n  k0: &b ' + 'x' * 100000 + '\n' +
         ''.join(f'  k{i}: *b\n' for i in range(1, 3000)), 'spec: expands to more than'),
    ]:
        path = os.path.join(WORK, 'spec.yaml')
        with open(path, 'w') as f:
            f.write(text)
        r = subprocess.run([cli, '--server', server.address, 'submit', '--spec', path],
                           capture_output=True, text=True, timeout=60)
        after = alive()
        t.check(f'cajal submit, {name}: exit 2 "{fragment}"', r.returncode == 2 and fragment in r.stderr and not after,
                f'exit {r.returncode}, stderr {r.stderr.strip()!r} {after}')
    r = subprocess.run([cli, '--server', server.address, 'submit', '--spec', os.path.join(WORK, 'nope.yaml')],
                       capture_output=True, text=True, timeout=60)
    t.check('cajal submit, missing spec file: exit 2 "cannot open"', r.returncode == 2 and 'cannot open' in r.stderr,
            f'exit {r.returncode}, stderr {r.stderr.strip()!r}')

    # ---- specs the server refuses.
    def layers(*units):
        def m(s):
            s.model.ClearField('layers')
            for u in units:
                s.model.layers.add().dense.units = u
        return m

    def many_layers(n):
        def m(s):
            s.model.ClearField('layers')
            for _ in range(n):
                s.model.layers.add().flatten.SetInParent()
        return m

    def set_attr(path, value):
        def m(s):
            obj = s
            *parents, last = path.split('.')
            for p in parents:
                obj = getattr(obj, p)
            setattr(obj, last, value)
        return m

    def activation_number(n):
        def m(s):
            s.model.layers[1].activation.kind = n  # an open enum: any int32 goes on the wire
        return m

    def idx_files(s):
        s.data.train.idx.images = '/nonexistent/train-images-idx3-ubyte'
        s.data.train.idx.labels = '/nonexistent/train-labels-idx1-ubyte'

    def csv_file(s):
        s.data.train.csv.path = os.path.join(WORK, 'no-such.csv')

    def preset_and_layers(s):
        s.model.preset = job_spec_pb2.PRESET_MLP

    cases = [
        ('negative batch_size', set_attr('training.batch_size', -3), 'training.batch_size: must be > 0, got -3'),
        ('negative units', layers(-5, 2), 'model.layers.0.dense.units: must be > 0, got -5'),
        ('zero epochs', set_attr('training.epochs', 0), 'training.epochs: must be > 0, got 0'),
        ('negative checkpoint_every_steps', set_attr('training.checkpoint_every_steps', -1),
         'training.checkpoint_every_steps: must be >= 0'),
        ('NaN learning rate', set_attr('optimizer.learning_rate', float('nan')),
         'optimizer.learning_rate: must be a finite number'),
        ('inf learning rate', set_attr('optimizer.learning_rate', float('inf')),
         'optimizer.learning_rate: must be a finite number'),
        ('-inf momentum', set_attr('optimizer.momentum', float('-inf')), 'optimizer.momentum: must be a finite number'),
        ('10^9 units', layers(10 ** 9, 2), 'model.layers.0.dense.units: must be <= 1048576, got 1000000000'),
        ('10^4 layers', many_layers(10 ** 4), 'model.layers: must be <= 1000, got 10000'),
        ('activation kind 99', activation_number(99), 'model.layers.1.activation.kind: unknown enum value 99'),
        ('optimizer kind 42', set_attr('optimizer.kind', 42), 'optimizer.kind: unknown enum value 42'),
        ('loss -1', set_attr('training.loss', -1), 'training.loss: unknown enum value -1'),
        ('empty model', lambda s: s.ClearField('model'), 'model: set preset'),
        ('preset and layers', preset_and_layers, 'model: set either preset or layers, not both'),
        ('unknown builtin', set_attr('data.train.builtin', 'imagenet'), 'unknown data set "imagenet"'),
        ('no training data', lambda s: s.data.ClearField('train'), 'data.train: required'),
        ('label key too long', lambda s: s.labels.__setitem__('k' * 64, 'v'), 'must have 1 to 63 characters'),
        ('spec over 1 MiB', set_attr('data.train.builtin', 'x' * (1 << 20)), 'bytes is larger than the limit of 1048576'),
    ]
    for name, mutate, fragment in cases:
        expect(name, submit(mutate), C.INVALID_ARGUMENT, fragment)
    # Data paths must lie beneath the data roots (tests/integration/data_test.py has the rest).
    expect('idx files outside the data roots', submit(idx_files), C.PERMISSION_DENIED,
           'data.train.idx.images: /nonexistent/train-images-idx3-ubyte is outside the server\'s data roots')
    expect('csv file outside the data roots', submit(csv_file), C.PERMISSION_DENIED,
           'data.train.csv.path: ')
    expect('missing csv file in a root', submit(lambda s: s.data.train.csv.__setattr__('path', 'no-such.csv')),
           C.NOT_FOUND, 'data.train.csv.path: no such file under the data roots: no-such.csv')
    expect('no spec', lambda: stub.SubmitJob(pb.SubmitJobRequest(), timeout=30), C.INVALID_ARGUMENT, 'spec: required')
    # A server without a GPU refuses a job that asks for one (this machine has none).
    expect('gpu device', submit(set_attr('training.device', job_spec_pb2.DEVICE_GPU)), C.FAILED_PRECONDITION,
           'training.device: gpu, but this server')
    expect('request_id of 129 characters', submit(lambda s: None, request_id='r' * 129), C.INVALID_ARGUMENT,
           'request_id: at most 128 characters, got 129')
    stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2), request_id='hostile-1'), timeout=30)
    expect('request_id reused with another spec', submit(lambda s: None, request_id='hostile-1'),
           C.ALREADY_EXISTS, 'was already used')

    # ---- oversize messages.
    expect('message over 4 MiB', submit(set_attr('data.train.builtin', 'x' * (5 << 20))),
           C.RESOURCE_EXHAUSTED, 'larger than max')
    expect('10^7 layers (a 40 MB message)', lambda: raw_submit(submit_with_layers(10 ** 7), timeout=120),
           C.RESOURCE_EXHAUSTED, 'larger than max')

    # ---- hostile ids, on every method that takes one.
    bad_ids = [
        ('path traversal', '../../../../etc/passwd'),
        ('traversal of hex length', '../' + 'a' * 29),
        ('NUL byte', 'a' * 16 + '\0' + 'a' * 15),
        ('31 characters', 'a' * 31),
        ('33 characters', 'a' * 33),
        ('uppercase hex', 'A' * 32),
        ('empty', ''),
    ]
    methods = {
        'GetJob': lambda i: stub.GetJob(pb.GetJobRequest(id=i), timeout=10),
        'CancelJob': lambda i: stub.CancelJob(pb.CancelJobRequest(id=i), timeout=10),
        'DeleteJob': lambda i: stub.DeleteJob(pb.DeleteJobRequest(id=i), timeout=10),
        'GetJobMetrics': lambda i: stub.GetJobMetrics(pb.GetJobMetricsRequest(id=i), timeout=10),
        'DownloadModel': lambda i: list(stub.DownloadModel(pb.DownloadModelRequest(id=i), timeout=10)),
        'WatchJob': lambda i: list(stub.WatchJob(pb.WatchJobRequest(id=i), timeout=10)),
    }
    for method, call in methods.items():
        for what, bad_id in bad_ids:
            expect(f'{method} id {what}', lambda: call(bad_id), C.INVALID_ARGUMENT,
                   'id: must be 32 lowercase hex characters')
    for what, bad_id in bad_ids:
        expect(f'DeleteDataset id {what}',
               lambda: stub.DeleteDataset(dpb.DeleteDatasetRequest(id=bad_id), timeout=10), C.INVALID_ARGUMENT,
               'id: must be a data set id: 32 lowercase hex characters')
    t.check('the data dir still holds the store and the job', os.path.exists(os.path.join(data, 'cajal.db')) and
            stub.GetJob(pb.GetJobRequest(id=done.id), timeout=10).state == pb.JOB_STATE_SUCCEEDED)
    expect('GetJob unknown id', lambda: methods['GetJob']('0' * 32), C.NOT_FOUND, 'not found')
    expect('WatchJob negative from_sequence',
           lambda: list(stub.WatchJob(pb.WatchJobRequest(id=done.id, from_sequence=-1), timeout=10)),
           C.INVALID_ARGUMENT, 'from_sequence: must be >= 0, got -1')
    expect('ListJobs negative page_size', lambda: stub.ListJobs(pb.ListJobsRequest(page_size=-1), timeout=10),
           C.INVALID_ARGUMENT, 'page_size: must be >= 0, got -1')
    for token in ('abc', '-5', '0', '9' * 30):
        expect(f'ListJobs page_token {token[:12]!r}', lambda: stub.ListJobs(pb.ListJobsRequest(page_token=token), timeout=10),
               C.INVALID_ARGUMENT, 'page_token: not a token this server returned')
    expect('CancelJob of a finished job', lambda: stub.CancelJob(pb.CancelJobRequest(id=done.id), timeout=10),
           C.FAILED_PRECONDITION, 'only queued or running jobs can be cancelled')

    # ---- protobuf garbage on raw calls: gRPC itself refuses to parse it (gRPC 1.51's callback
    # server answers a request it cannot deserialize with UNIMPLEMENTED; other versions INTERNAL).
    for name, call, payload in [
        ('SubmitJob garbage bytes', raw_submit, b'\xff\xff\xff\xff\x0f\x12\x34garbage'),
        ('SubmitJob truncated field', raw_submit, b'\x0a\x7f\x0a'),
        ('GetJob invalid UTF-8 id', raw_get, b'\x0a\x02\xc3\x28'),
    ]:
        e = rpc_error(lambda: call(payload, timeout=10))
        after = alive()
        ok = e is not None and e.code() in (C.INTERNAL, C.UNIMPLEMENTED) and not after
        t.check(f'{name}: refused by gRPC ({e.code().name if e else "OK"}), server survives', ok,
                f'{e.details() if e else ""} {after}')
    # A field of the wrong wire type is an unknown field to protobuf: the id reads as empty.
    expect('GetJob id sent with the wrong wire type', lambda: raw_get(b'\x0d\x01\x02\x03\x04', timeout=10),
           C.INVALID_ARGUMENT, 'id: must be 32 lowercase hex characters')

    # ---- watcher limit: two watchers of a running job, the third is refused.
    long_job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=100000)), timeout=30)
    watchers = [stub.WatchJob(pb.WatchJobRequest(id=long_job.id), timeout=120) for _ in range(2)]
    first = [next(w) for w in watchers]
    t.check('two watchers of one job are served', all(e.sequence == 0 for e in first), first)
    expect('third watcher with --max_watchers_per_job 2',
           lambda: list(stub.WatchJob(pb.WatchJobRequest(id=long_job.id), timeout=30)),
           C.RESOURCE_EXHAUSTED, 'this job already has 2 watchers')
    for w in watchers:
        w.cancel()
    again = wait_for(lambda: next(iter(stub.WatchJob(pb.WatchJobRequest(id=long_job.id), timeout=30))), 10)
    t.check('a watcher slot frees up when a watcher leaves', again is not None and again.sequence == 0)
    stub.CancelJob(pb.CancelJobRequest(id=long_job.id), timeout=30)
    t.check('the long job is cancelled', wait_for(
        lambda: stub.GetJob(pb.GetJobRequest(id=long_job.id), timeout=5).state == pb.JOB_STATE_CANCELLED, 60))

    # ---- a lowered --max_message_bytes.
    small = Server(BUILD, os.path.join(WORK, 'data-small'), os.path.join(WORK, 'cajald-small.log'),
                   '--max_message_bytes', '65536').start()
    sstub = small.stub()
    e = rpc_error(lambda: sstub.SubmitJob(pb.SubmitJobRequest(spec=spec_with(set_attr('data.train.builtin', 'x' * 70000))),
                                          timeout=30))
    t.check('--max_message_bytes 65536: a 70 kB request is RESOURCE_EXHAUSTED',
            e is not None and e.code() == C.RESOURCE_EXHAUSTED, e)
    ok_job = sstub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=1)), timeout=30)
    t.check('--max_message_bytes 65536: a small request still works', len(ok_job.id) == 32)
    small.kill9()

    t.check('cajald is still running at the end', server.proc.poll() is None)
    resources(server, data, done.id)
    return t.summary()


def mnist(mutate):
    """A Fashion-MNIST job (the builtin; 28 steps of 28 features for a recurrent layer)."""
    s = job_spec_pb2.JobSpec()
    s.data.train.builtin = 'fashion-mnist'
    s.data.normalize = job_spec_pb2.NORMALIZE_SCALE
    s.optimizer.kind = job_spec_pb2.OPTIMIZER_KIND_SGD
    s.optimizer.learning_rate = 0.01
    s.training.epochs = 1
    s.training.batch_size = 64
    s.training.seed = 1
    s.training.threads = 1
    mutate(s)
    return s


def huge_specs():
    """(name, spec, fragment of the biggest part) for specs no machine here can hold."""
    def dense(*units):
        def m(s):
            for u in units:
                s.model.layers.add().dense.units = u
        return m

    def lstm(s):
        s.model.layers.add().lstm.units = 200000
        s.model.layers.add().dense.units = 10

    def conv(s):
        c = s.model.layers.add().conv2d
        c.filters, c.kernel = 100000, 3
        s.model.layers.add().flatten.SetInParent()
        s.model.layers.add().dense.units = 10
        s.training.batch_size = 256

    def batch(s):
        dense(100000, 10)(s)
        s.training.batch_size = 60000

    two_dense = xor_spec()
    two_dense.model.ClearField('layers')
    dense(1000000, 1000000, 2)(two_dense)
    return [
        ('two dense layers of 10^6 units', two_dense, 'the biggest part: model.layers.1.dense: '),
        ('lstm of 200000 units', mnist(lstm), 'the biggest part: model.layers.0.lstm: '),
        ('conv2d of 100000 filters', mnist(conv), 'the biggest part: '),
        ('batch_size 60000 with a 100000-unit layer', mnist(batch), 'the biggest part: '),
    ]


def resources(server, data, done_id):
    stub = server.stub()
    for name, spec, fragment in huge_specs():
        e = rpc_error(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=60))
        got = 'OK' if e is None else f'{e.code().name} {e.details()!r}'
        ok = (e is not None and e.code() == C.INVALID_ARGUMENT and
              'too large for this server: the job needs an estimated' in e.details() and
              'the memory budget is' in e.details() and fragment in e.details())
        t.check(f'{name}: INVALID_ARGUMENT with the estimate, the budget and the biggest part',
                ok and server.proc.poll() is None, got)
    listed = stub.ListJobs(pb.ListJobsRequest(page_size=1000), timeout=10).jobs
    t.check('none of them was stored', all(j.spec.data.train.builtin != 'fashion-mnist' or
                                           j.spec.model.layers[0].dense.units < 100000 for j in listed))
    # A restart on the same data dir serves: the old job is there, a new one runs.
    server.kill9()
    server = Server(BUILD, data, os.path.join(WORK, 'cajald.log')).start()
    stub = server.stub()
    t.check('a restart on the same data dir serves the earlier job',
            stub.GetJob(pb.GetJobRequest(id=done_id), timeout=10).state == pb.JOB_STATE_SUCCEEDED)
    fresh = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2)), timeout=30)
    t.check('and runs a new job to the end', wait_for(
        lambda: stub.GetJob(pb.GetJobRequest(id=fresh.id), timeout=5).state == pb.JOB_STATE_SUCCEEDED, 60))
    t.check('its estimate is on the job (GetJob)', fresh.memory_estimate.parameters == 42 and
            fresh.memory_estimate.total_bytes > 0 and fresh.memory_estimate.biggest.where != '',
            fresh.memory_estimate)
    server.kill9()

    # --max_job_memory far above the machine (1000 TB): the same specs fit the server, not the machine now.
    big = Server(BUILD, os.path.join(WORK, 'data-big'), os.path.join(WORK, 'cajald-big.log'),
                 '--max_job_memory', '1000TB').start()
    bstub = big.stub()
    for name, spec, fragment in huge_specs()[:2]:
        e = rpc_error(lambda: bstub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=60))
        t.check(f'--max_job_memory 1000TB, {name}: RESOURCE_EXHAUSTED "not enough memory is free"',
                e is not None and e.code() == C.RESOURCE_EXHAUSTED and
                'not enough memory is free on this server now' in e.details() and fragment in e.details(),
                e and f'{e.code().name} {e.details()!r}')
    big.kill9()

    # Allocation failing past the estimate: cajald may map at most 2 GB of address space
    # (RLIMIT_AS, as `ulimit -v` sets it) but was told its jobs may use 16 GB. A 200000-unit
    # layer (about 1.3 GB of parameters and gradients, plus the data) passes admission; its
    # allocations then fail inside the job.
    def limit_address_space():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    limited = Server(BUILD, os.path.join(WORK, 'data-limited'), os.path.join(WORK, 'cajald-limited.log'),
                     '--max_job_memory', '16GB', preexec_fn=limit_address_space).start()
    lstub = limited.stub()
    job = lstub.SubmitJob(pb.SubmitJobRequest(spec=mnist(lambda s: (s.model.layers.add().dense.__setattr__(
        'units', 200000), s.model.layers.add().dense.__setattr__('units', 10)))), timeout=60)
    t.check('RLIMIT_AS 2 GB, --max_job_memory 16GB: a 200000-unit job is admitted',
            job.state == pb.JOB_STATE_QUEUED and job.memory_estimate.total_bytes > (1 << 30), job.memory_estimate)
    failed = wait_for(lambda: (lambda j: j if j.state == pb.JOB_STATE_FAILED else None)(
        lstub.GetJob(pb.GetJobRequest(id=job.id), timeout=5)), 120)
    # The core's message names the buffer: "the network's parameters (... values): out of
    # memory: cannot allocate ... bytes".
    t.check('its allocation fails: the job FAILED "out of memory: cannot allocate", naming the buffer',
            failed is not None and 'out of memory: cannot allocate' in failed.error,
            failed.error if failed else lstub.GetJob(pb.GetJobRequest(id=job.id), timeout=5))
    after = lstub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2)), timeout=30)
    t.check('the limited server serves on and runs the next job', limited.proc.poll() is None and wait_for(
        lambda: lstub.GetJob(pb.GetJobRequest(id=after.id), timeout=5).state == pb.JOB_STATE_SUCCEEDED, 60))
    limited.kill9()

    # Flags: a size that is not one, a GPU that is not there.
    cajald = os.path.join(BUILD, 'bin', 'cajald')
    for flags, fragment in [(['--max_job_memory', 'lots'], '--max_job_memory: "lots" is not a size'),
                            (['--max_job_memory', '0'], '--max_job_memory: must be more than 0 bytes'),
                            (['--gpus', '64'], '--gpus: must be in [0, ')]:
        r = subprocess.run([cajald, '--port', '0', '--metrics_port', '-1', '--data_dir',
                            os.path.join(WORK, 'data-flags'), *flags], capture_output=True, text=True, timeout=60)
        t.check(f'cajald {" ".join(flags)}: exit 2 "{fragment}"', r.returncode == 2 and fragment in r.stderr,
                f'exit {r.returncode}, stderr {r.stderr.strip()!r}')


if __name__ == '__main__':
    sys.exit(main())
