#!/usr/bin/python3
"""A second, independent client of cajal.v1.TrainingService, in Python (Debian's python3-grpcio).

  python_client.py STUB_DIR HOST:PORT OUT_DIR

STUB_DIR holds modules generated from proto/ with protoc --python_out and grpc_python_plugin.
Submits a small job (twice with one request_id), watches it to the end, checks the event
sequence, downloads the model, uploads a CSV (UploadDataset) and trains on it by its data set id,
and checks the error codes of a bad spec and an unknown id.
Prints one line per check and `N passed, M failed`; exits 1 on any failure.
"""
import hashlib
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from cajal.v1 import dataset_pb2, job_spec_pb2, training_service_pb2 as pb, training_service_pb2_grpc as rpc  # noqa: E402,E501

passed = failed = 0


def check(name, ok, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'ok   {name}')
    else:
        failed += 1
        print(f'FAIL {name} {detail}')


def spec(epochs=3):
    s = job_spec_pb2.JobSpec()
    for layer in ({'dense': 8}, {'activation': job_spec_pb2.ACTIVATION_KIND_TANH}, {'dense': 2}):
        entry = s.model.layers.add()
        if 'dense' in layer:
            entry.dense.units = layer['dense']
        else:
            entry.activation.kind = layer['activation']
    s.data.train.builtin = 'xor'
    s.optimizer.kind = job_spec_pb2.OPTIMIZER_KIND_ADAM
    s.optimizer.learning_rate = 0.05
    s.training.epochs = epochs
    s.training.batch_size = 4
    s.training.seed = 7
    return s


def main():
    channel = grpc.insecure_channel(sys.argv[2])
    stub = rpc.TrainingServiceStub(channel)
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec(), request_id='py-1'), timeout=30)
    check('submit returns a queued job', job.state == pb.JOB_STATE_QUEUED and len(job.id) == 32, job)
    again = stub.SubmitJob(pb.SubmitJobRequest(spec=spec(), request_id='py-1'), timeout=30)
    check('same request_id returns the same job', again.id == job.id)
    try:
        stub.SubmitJob(pb.SubmitJobRequest(spec=spec(epochs=5), request_id='py-1'), timeout=30)
        check('same request_id, other spec is ALREADY_EXISTS', False, 'no error')
    except grpc.RpcError as e:
        check('same request_id, other spec is ALREADY_EXISTS', e.code() == grpc.StatusCode.ALREADY_EXISTS, e)

    events = list(stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=120))
    seqs = [e.sequence for e in events]
    check('watch sequence numbers are 0..n-1', seqs == list(range(len(events))), seqs)
    states = [e.state for e in events if e.WhichOneof('kind') == 'state']
    check('watch ends with SUCCEEDED', states[-1:] == [pb.JOB_STATE_SUCCEEDED], states)
    losses = [e.metric.value for e in events if e.WhichOneof('kind') == 'metric' and e.metric.name == 'loss']
    check('one loss per epoch', len(losses) == 3, losses)
    resumed = list(stub.WatchJob(pb.WatchJobRequest(id=job.id, from_sequence=2), timeout=60))
    check('from_sequence resumes', [e.sequence for e in resumed] == seqs[2:])

    done = stub.GetJob(pb.GetJobRequest(id=job.id), timeout=30)
    check('get shows SUCCEEDED with progress', done.state == pb.JOB_STATE_SUCCEEDED and done.progress.step == 3, done.progress)
    data = b''.join(c.data for c in stub.DownloadModel(pb.DownloadModelRequest(id=job.id), timeout=60))
    check('download is a cajal model file', data[:8] == b'CAJALMDL' and len(data) > 100, data[:8])
    with open(sys.argv[3] + '/model.cajal', 'wb') as f:
        f.write(data)

    # A CSV from this machine: uploaded in 1 KiB chunks, then trained on by its data set id.
    rows = [f'{(i * 37 % 100) / 100:.2f},{(i * 61 % 100) / 100:.2f},{i % 2}' for i in range(128)]
    csv = ('\n'.join(rows) + '\n').encode()

    def upload_requests():
        yield dataset_pb2.UploadDatasetRequest(header=dataset_pb2.UploadDatasetHeader(
            name='points.csv', size_bytes=len(csv), sha256=hashlib.sha256(csv).hexdigest()))
        for i in range(0, len(csv), 1024):
            yield dataset_pb2.UploadDatasetRequest(chunk=csv[i:i + 1024])
    dataset = stub.UploadDataset(upload_requests(), timeout=60)
    check('upload returns the data set with its sha256', len(dataset.id) == 32 and
          dataset.sha256 == hashlib.sha256(csv).hexdigest() and dataset.size_bytes == len(csv), dataset)
    on_csv = spec(epochs=2)
    on_csv.data.train.csv.dataset = dataset.id
    on_csv.training.batch_size = 32
    csv_job = stub.SubmitJob(pb.SubmitJobRequest(spec=on_csv), timeout=30)
    csv_events = list(stub.WatchJob(pb.WatchJobRequest(id=csv_job.id), timeout=120))
    csv_states = [e.state for e in csv_events if e.WhichOneof('kind') == 'state']
    check('a job on the uploaded CSV SUCCEEDED', csv_states[-1:] == [pb.JOB_STATE_SUCCEEDED], csv_events[-1:])
    csv_losses = [e for e in csv_events if e.WhichOneof('kind') == 'metric' and e.metric.name == 'loss']
    check('it trained two epochs on the 128 rows', len(csv_losses) == 2 and
          stub.GetJob(pb.GetJobRequest(id=csv_job.id), timeout=30).progress.step == 8, csv_losses)

    bad = spec()
    bad.training.batch_size = -3
    try:
        stub.SubmitJob(pb.SubmitJobRequest(spec=bad), timeout=30)
        check('bad spec is INVALID_ARGUMENT', False, 'no error')
    except grpc.RpcError as e:
        check('bad spec is INVALID_ARGUMENT', e.code() == grpc.StatusCode.INVALID_ARGUMENT
              and 'training.batch_size: must be > 0, got -3' in e.details(), e.details())
    try:
        stub.GetJob(pb.GetJobRequest(id='0' * 32), timeout=30)
        check('unknown id is NOT_FOUND', False, 'no error')
    except grpc.RpcError as e:
        check('unknown id is NOT_FOUND', e.code() == grpc.StatusCode.NOT_FOUND, e)

    print(f'{passed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
