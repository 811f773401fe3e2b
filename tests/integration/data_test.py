#!/usr/bin/python3
"""Data on the server (issue 22), through real cajald processes and the real `cajal` CLI.

  data_test.py STUB_DIR BUILD_DIR WORK_DIR

- Leaks: a file outside the data roots is PERMISSION_DENIED at SubmitJob (the same answer whether
  it exists or not); the same secret file inside a root fails the job naming file, line and
  column, never its cells (whatever label_column points at).
- Escapes: `..`, a symbolic link, a linked directory, and a file swapped for a link after
  SubmitJob while the job waited in the queue.
- Amplification: an IDX file whose header promises 10,000,000 images in 116 bytes (raw and gzip)
  fails its job, and cajald's peak RSS (VmHWM, /proc) stays under 100 MB.
- Uploads: `cajal upload` + a spec naming the data set trains (CSV, and IDX images + labels);
  the size limit and the quota (RESOURCE_EXHAUSTED before any byte), chunk size, short and long
  streams, header order, checksum mismatch (DATA_LOSS, nothing stored), concurrent uploads,
  list/delete, unknown and deleted data sets at submit (NOT_FOUND), and a kill -9 mid-upload
  followed by a restart (no partial data set, nothing left in .incoming).
"""
import gzip
import hashlib
import os
import re
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools'))
from cajald_harness import Checks, Server, grpc, job_spec_pb2, pb, rpc_error, wait_for, xor_spec  # noqa: E402
from cajal.v1 import dataset_pb2 as dpb  # noqa: E402

BUILD, WORK = sys.argv[2], sys.argv[3]
C = grpc.StatusCode
t = Checks()
SECRET = b'db_password,hunter2secret,swordfish\n'
SECRET_WORDS = ('db_password', 'hunter2secret', 'swordfish')
TERMINAL = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def xor_csv(rows=64):
    lines = []
    for i in range(rows):
        a, b = (i * 7919 % 100) / 100, (i * 104729 % 100) / 100
        lines.append(f'{a:.2f},{b:.2f},{int((a > 0.5) != (b > 0.5))}')
    return ('\n'.join(lines) + '\n').encode()


def small_spec(train):
    """An MLP on 2 features; `train` fills spec.data.train."""
    s = xor_spec(epochs=2)
    s.data.train.Clear()
    train(s.data.train)
    s.training.batch_size = 16
    return s


def csv_source(path=None, dataset=None, label_column=None):
    def fill(src):
        if path is not None:
            src.csv.path = path
        if dataset is not None:
            src.csv.dataset = dataset
        if label_column is not None:
            src.csv.label_column = label_column
    return fill


def wait_terminal(stub, job_id, timeout=120):
    return wait_for(lambda: (lambda j: j if j.state in TERMINAL else None)(
        stub.GetJob(pb.GetJobRequest(id=job_id), timeout=10)), timeout)


def leaks(text):
    return [w for w in SECRET_WORDS if w in text]


def vm_hwm_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        m = re.search(r'VmHWM:\s+(\d+) kB', f.read())
    return int(m.group(1)) / 1024


def upload_requests(data, name='data.csv', size=None, sha=None, chunk=1 << 20, header=True, extra_header=False):
    if header:
        yield dpb.UploadDatasetRequest(header=dpb.UploadDatasetHeader(
            name=name, size_bytes=len(data) if size is None else size,
            sha256=hashlib.sha256(data).hexdigest() if sha is None else sha))
    if extra_header:
        yield dpb.UploadDatasetRequest(header=dpb.UploadDatasetHeader(name=name, size_bytes=1, sha256='0' * 64))
    for i in range(0, len(data), chunk):
        yield dpb.UploadDatasetRequest(chunk=data[i:i + chunk])


def upload(stub, data, **kwargs):
    return stub.UploadDataset(upload_requests(data, **kwargs), timeout=60)


def cli(server, *args):
    return subprocess.run([os.path.join(BUILD, 'bin', 'cajal'), '--server', server.address, '--timeout', '30', *args],
                          capture_output=True, text=True, timeout=120)


def submit_error(stub, spec):
    return rpc_error(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=30))


# ---- confinement and leaks ---------------------------------------------------------------------

def confinement_tests(server, stub, roots):
    datasets = os.path.join(server.data_dir, 'datasets')
    outside = os.path.join(WORK, 'outside')
    write(os.path.join(outside, 'secret.csv'), SECRET)
    write(os.path.join(datasets, 'secret.csv'), b'1,2,0\n' + SECRET)

    for what, path in (('an existing file', os.path.join(outside, 'secret.csv')),
                       ('a missing file', os.path.join(outside, 'no-such.csv')),
                       ('/etc/passwd', '/etc/passwd')):
        e = submit_error(stub, small_spec(csv_source(path=path)))
        ok = (e is not None and e.code() == C.PERMISSION_DENIED and 'data.train.csv.path: ' in e.details()
              and all(r in e.details() for r in roots) and not leaks(e.details()))
        t.check(f'outside the roots, {what}: PERMISSION_DENIED naming the field and the roots', ok,
                e.details() if e else 'no error')
    spec = small_spec(csv_source(path='x'))
    spec.data.train.Clear()
    spec.data.train.idx.images = '/etc/shadow'
    spec.data.train.idx.labels = '/etc/passwd'
    e = submit_error(stub, spec)
    t.check('idx images outside the roots: PERMISSION_DENIED naming data.train.idx.images',
            e is not None and e.code() == C.PERMISSION_DENIED and 'data.train.idx.images: ' in e.details(), e)

    # Escapes from inside a root.
    os.symlink(os.path.join(outside, 'secret.csv'), os.path.join(datasets, 'link.csv'))
    os.symlink(outside, os.path.join(datasets, 'linkdir'))
    for what, path in (('..', os.path.join(datasets, '..', '..', 'outside', 'secret.csv')),
                       ('a relative ..', '../../outside/secret.csv'),
                       ('a symbolic link', os.path.join(datasets, 'link.csv')),
                       ('a linked directory', os.path.join(datasets, 'linkdir', 'secret.csv'))):
        e = submit_error(stub, small_spec(csv_source(path=path)))
        t.check(f'escape through {what}: PERMISSION_DENIED "leads outside"',
                e is not None and e.code() == C.PERMISSION_DENIED and 'leads outside the data roots' in e.details()
                and not leaks(e.details()), e.details() if e else 'no error')
    e = submit_error(stub, small_spec(csv_source(path=os.path.join(datasets, 'nope.csv'))))
    t.check('a missing file inside a root: NOT_FOUND', e is not None and e.code() == C.NOT_FOUND
            and 'no such file under the data roots' in e.details(), e)

    # The secret inside a root: the job fails naming file, line and column, whatever column the
    # label is taken from; no cell reaches the client or the log.
    for label_column in (0, 1, 2, -1):
        for path in (os.path.join(datasets, 'secret.csv'), 'secret.csv'):
            job = stub.SubmitJob(pb.SubmitJobRequest(spec=small_spec(csv_source(path=path, label_column=label_column))),
                                 timeout=30)
            done = wait_terminal(stub, job.id)
            events = list(stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=30))
            errors = ' '.join([done.error if done else ''] + [ev.error for ev in events])
            ok = (done is not None and done.state == pb.JOB_STATE_FAILED
                  and re.search(re.escape(path) + r':2: column \d', done.error) is not None and not leaks(errors))
            t.check(f'secret inside a root ({path}, label_column {label_column}): FAILED, file:line:column only',
                    ok, done.error if done else 'no terminal state')
    t.check('the secret never reaches the cajald log', not leaks(server.log()))


def swapped_after_submit_test(stub):
    """A file that is fine at SubmitJob and swapped for a link out of the root while its job waits
    in the queue: the job reopens it through the roots when it starts and fails."""
    datasets = os.path.join(WORK, 'data', 'datasets')
    good = os.path.join(datasets, 'good.csv')
    write(good, xor_csv())
    blocker = xor_spec(epochs=100000)
    blocker_job = stub.SubmitJob(pb.SubmitJobRequest(spec=blocker), timeout=30)
    wait_for(lambda: stub.GetJob(pb.GetJobRequest(id=blocker_job.id), timeout=10).state == pb.JOB_STATE_RUNNING, 30)
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=small_spec(csv_source(path=good))), timeout=30)
    t.check('the job naming good.csv is queued behind the blocker',
            stub.GetJob(pb.GetJobRequest(id=job.id), timeout=10).state == pb.JOB_STATE_QUEUED)
    os.unlink(good)
    os.symlink(os.path.join(WORK, 'outside', 'secret.csv'), good)
    stub.CancelJob(pb.CancelJobRequest(id=blocker_job.id), timeout=30)
    done = wait_terminal(stub, job.id)
    t.check('swapped for a link after SubmitJob: the job FAILED "leads outside", nothing read',
            done is not None and done.state == pb.JOB_STATE_FAILED and 'leads outside the data roots' in done.error
            and not leaks(done.error), done.error if done else 'no terminal state')


# ---- amplification -----------------------------------------------------------------------------

def amplification_test():
    """A fresh server, so its VmHWM measures only what these jobs made it hold."""
    data = os.path.join(WORK, 'data-amp')
    datasets = os.path.join(data, 'datasets')
    lying = struct.pack('>IIII', 0x803, 10_000_000, 28, 28) + b'\x07' * 100
    write(os.path.join(datasets, 'lying-idx3-ubyte'), lying)
    write(os.path.join(datasets, 'lying-idx3-ubyte.gz'), gzip.compress(lying))
    write(os.path.join(datasets, 'labels-idx1-ubyte'), struct.pack('>II', 0x801, 10_000_000) + bytes(10_000_000))
    server = Server(BUILD, data, os.path.join(WORK, 'cajald-amp.log')).start()
    stub = server.stub()
    before = vm_hwm_mb(server.proc.pid)
    for name in ('lying-idx3-ubyte', 'lying-idx3-ubyte.gz'):
        spec = small_spec(csv_source(path='x'))
        spec.data.train.Clear()
        spec.data.train.idx.images = name
        spec.data.train.idx.labels = 'labels-idx1-ubyte'
        spec.model.Clear()
        spec.model.preset = job_spec_pb2.PRESET_MLP
        job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=30)
        done = wait_terminal(stub, job.id)
        t.check(f'lying header ({name}, 116 bytes promising 7.8 GB): FAILED "truncated"',
                done is not None and done.state == pb.JOB_STATE_FAILED and 'truncated' in done.error
                and name in done.error, done.error if done else 'no terminal state')
    peak = vm_hwm_mb(server.proc.pid)
    print(f'cajald VmHWM: {before:.1f} MB at start, {peak:.1f} MB after both jobs', flush=True)
    t.check('cajald peak RSS stays under 100 MB', peak < 100, f'{peak:.1f} MB')
    server.signal(15)
    server.wait(30)


# ---- uploads -----------------------------------------------------------------------------------

def upload_tests(server, stub):
    datasets = os.path.join(server.data_dir, 'datasets')
    data = xor_csv()
    path = os.path.join(WORK, 'xor.csv')
    write(path, data)
    r = cli(server, 'upload', path)
    ds_id = r.stdout.strip()
    t.check('cajal upload prints the data set id', r.returncode == 0 and re.fullmatch(r'[0-9a-f]{32}', ds_id),
            f'{r.returncode} {r.stdout!r} {r.stderr!r}')
    listed = {d.id: d for d in stub.ListDatasets(dpb.ListDatasetsRequest(), timeout=10).datasets}
    t.check('ListDatasets shows it with its size, sha256 and name',
            ds_id in listed and listed[ds_id].size_bytes == len(data)
            and listed[ds_id].sha256 == hashlib.sha256(data).hexdigest() and listed[ds_id].name == 'xor.csv', listed)
    with open(os.path.join(datasets, ds_id, 'data'), 'rb') as f:
        t.check('the stored file is the uploaded bytes', f.read() == data)
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=small_spec(csv_source(dataset=ds_id))), timeout=30)
    done = wait_terminal(stub, job.id)
    t.check('a job on data.train.csv.dataset SUCCEEDED', done is not None and done.state == pb.JOB_STATE_SUCCEEDED,
            done)
    r = cli(server, 'datasets')
    t.check('cajal datasets lists it', r.returncode == 0 and ds_id in r.stdout and 'xor.csv' in r.stdout, r.stdout)

    # IDX images and labels as two uploads.
    images = struct.pack('>IIII', 0x803, 32, 2, 2) + bytes((i * 37) % 256 for i in range(32 * 4))
    labels = struct.pack('>II', 0x801, 32) + bytes(i % 2 for i in range(32))
    img = upload(stub, gzip.compress(images), name='images.gz')
    lab = upload(stub, labels, name='labels')
    spec = small_spec(csv_source(path='x'))
    spec.data.train.Clear()
    spec.data.train.idx.images_dataset = img.id
    spec.data.train.idx.labels_dataset = lab.id
    spec.data.train.shape.extend([4])
    spec.data.normalize = job_spec_pb2.NORMALIZE_SCALE
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec), timeout=30)
    done = wait_terminal(stub, job.id)
    t.check('a job on idx.images_dataset + labels_dataset SUCCEEDED',
            done is not None and done.state == pb.JOB_STATE_SUCCEEDED, done)

    # Unknown, malformed and deleted data sets at submit.
    e = submit_error(stub, small_spec(csv_source(dataset='0' * 32)))
    t.check('an unknown data set: NOT_FOUND naming the field',
            e is not None and e.code() == C.NOT_FOUND and 'data.train.csv.dataset: no data set' in e.details(), e)
    e = submit_error(stub, small_spec(csv_source(dataset='../../etc/passwd')))
    t.check('a malformed data set id: INVALID_ARGUMENT', e is not None and e.code() == C.INVALID_ARGUMENT
            and 'data.train.csv.dataset: must be a data set id' in e.details(), e)
    r = cli(server, 'delete-dataset', ds_id)
    t.check('cajal delete-dataset', r.returncode == 0 and f'deleted data set {ds_id}' in r.stdout, r.stderr)
    e = submit_error(stub, small_spec(csv_source(dataset=ds_id)))
    t.check('a deleted data set: NOT_FOUND at submit', e is not None and e.code() == C.NOT_FOUND, e)
    e = rpc_error(lambda: stub.DeleteDataset(dpb.DeleteDatasetRequest(id=ds_id), timeout=10))
    t.check('deleting it again: NOT_FOUND', e is not None and e.code() == C.NOT_FOUND, e)
    t.check('its directory is gone', not os.path.exists(os.path.join(datasets, ds_id)))
    for name in (img.id, lab.id):
        stub.DeleteDataset(dpb.DeleteDatasetRequest(id=name), timeout=10)


def entries(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def upload_limit_tests(server, stub):
    """The server runs with --max_dataset_bytes 100000 --max_datasets_bytes 250000."""
    datasets = os.path.join(server.data_dir, 'datasets')
    before = entries(datasets)

    def refused(name, code, text, **kwargs):
        data = kwargs.pop('data', b'x' * 1000)
        e = rpc_error(lambda: upload(server.stub(), data, **kwargs))
        t.check(f'{name}: {code.name}', e is not None and e.code() == code and text in e.details(),
                f'{e.code().name if e else "OK"} {e.details() if e else ""}')

    refused('larger than --max_dataset_bytes', C.RESOURCE_EXHAUSTED, '--max_dataset_bytes=100000',
            data=b'x' * 100001)
    e = rpc_error(lambda: server.stub().UploadDataset(iter([
        dpb.UploadDatasetRequest(header=dpb.UploadDatasetHeader(name='big', size_bytes=90000, sha256='0' * 64)),
        dpb.UploadDatasetRequest(chunk=b'x' * ((1 << 20) + 1))]), timeout=30))
    t.check('a chunk over 1 MiB: INVALID_ARGUMENT', e is not None and e.code() == C.INVALID_ARGUMENT
            and 'more than the limit of 1048576' in e.details(), e)
    refused('more bytes than size_bytes', C.INVALID_ARGUMENT, 'more bytes than header.size_bytes', size=999)
    refused('fewer bytes than size_bytes', C.INVALID_ARGUMENT, 'ended after 1000 of the 1001 bytes', size=1001)
    refused('no header', C.INVALID_ARGUMENT, 'the first message must carry the header', header=False)
    refused('a second header', C.INVALID_ARGUMENT, 'sent twice', extra_header=True)
    refused('an empty stream', C.INVALID_ARGUMENT, 'ended before the header', data=b'', header=False)
    refused('a bad sha256', C.INVALID_ARGUMENT, 'header.sha256: must be 64 hex characters', sha='abc')
    refused('sha256 mismatch', C.DATA_LOSS, 'nothing was stored', sha=hashlib.sha256(b'other').hexdigest())
    t.check('the refused uploads left nothing behind',
            entries(datasets) == before and entries(os.path.join(datasets, '.incoming')) == [],
            f'{entries(datasets)} {entries(os.path.join(datasets, ".incoming"))}')

    # The quota: 2 x 90000 fit in 250000, a third does not until one is deleted.
    a = upload(stub, b'a' * 90000)
    upload(stub, b'b' * 90000)
    refused('beyond --max_datasets_bytes', C.RESOURCE_EXHAUSTED, '--max_datasets_bytes=250000', data=b'c' * 90000)
    stub.DeleteDataset(dpb.DeleteDatasetRequest(id=a.id), timeout=10)
    c = rpc_error(lambda: upload(stub, b'c' * 90000))
    t.check('after a deletion the quota has room again', c is None, c)

    # Concurrent uploads: each lands whole, with its own id.
    for d in stub.ListDatasets(dpb.ListDatasetsRequest(), timeout=10).datasets:
        stub.DeleteDataset(dpb.DeleteDatasetRequest(id=d.id), timeout=10)
    results = [None] * 8

    def one(i):
        try:
            results[i] = upload(server.stub(), bytes([65 + i]) * (20000 + i), chunk=4096)
        except grpc.RpcError as e:
            results[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = all(isinstance(r, dpb.Dataset) for r in results) and len({r.id for r in results}) == 8
    ok = ok and all(r.sha256 == hashlib.sha256(bytes([65 + i]) * (20000 + i)).hexdigest()
                    for i, r in enumerate(results))
    t.check('8 concurrent uploads all land whole with distinct ids', ok, results)
    listed = {d.id for d in stub.ListDatasets(dpb.ListDatasetsRequest(page_size=3), timeout=10).datasets}
    t.check('ListDatasets pages (page_size 3)', len(listed) == 3)


def kill_mid_upload_test():
    data = os.path.join(WORK, 'data-kill')
    incoming = os.path.join(data, 'datasets', '.incoming')
    server = Server(BUILD, data, os.path.join(WORK, 'cajald-kill.log')).start()
    release = threading.Event()
    payload = b'k' * (64 << 10)

    def requests():
        yield dpb.UploadDatasetRequest(header=dpb.UploadDatasetHeader(
            name='half', size_bytes=len(payload) * 4, sha256=hashlib.sha256(payload * 4).hexdigest()))
        yield dpb.UploadDatasetRequest(chunk=payload)
        yield dpb.UploadDatasetRequest(chunk=payload)
        release.wait(60)
    future = server.stub().UploadDataset.future(requests(), timeout=90)

    def partial_on_disk():
        for d in entries(incoming):
            p = os.path.join(incoming, d, 'data')
            if os.path.exists(p) and os.path.getsize(p) >= 2 * len(payload):
                return True
        return False
    t.check('mid-upload: a partial file is in .incoming', wait_for(partial_on_disk, 30), entries(incoming))
    server.kill9()
    release.set()
    e = future.exception(timeout=30)
    t.check('the client sees the upload fail', e is not None, e)
    server.start()
    listed = list(server.stub().ListDatasets(dpb.ListDatasetsRequest(), timeout=10).datasets)
    t.check('after kill -9 and a restart: no data set is listed', listed == [], listed)
    t.check('and .incoming is empty', entries(incoming) == [], entries(incoming))
    t.check('and nothing but .incoming is in datasets/', entries(os.path.join(data, 'datasets')) == ['.incoming'],
            entries(os.path.join(data, 'datasets')))
    server.signal(15)
    server.wait(30)


def main():
    data = os.path.join(WORK, 'data')
    server = Server(BUILD, data, os.path.join(WORK, 'cajald.log')).start()
    stub = server.stub()
    m = re.search(r'data roots roots=(\S+) confinement=(.*)', server.log())
    roots = m.group(1).split(',') if m else []
    t.check('cajald logs its data roots and how it confines them', m is not None and
            os.path.join(data, 'datasets') in roots, server.log())
    if m:
        print(f'confinement on this machine: {m.group(2)}', flush=True)
    confinement_tests(server, stub, roots)
    swapped_after_submit_test(stub)
    upload_tests(server, stub)
    server.signal(15)
    server.wait(30)

    limited = Server(BUILD, os.path.join(WORK, 'data-limits'), os.path.join(WORK, 'cajald-limits.log'),
                     '--max_dataset_bytes', '100000', '--max_datasets_bytes', '250000').start()
    upload_limit_tests(limited, limited.stub())
    limited.signal(15)
    limited.wait(30)

    amplification_test()
    kill_mid_upload_test()
    return t.summary()


if __name__ == '__main__':
    sys.exit(main())
