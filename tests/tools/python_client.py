#!/usr/bin/python3
"""A second, independent client of cajal.v1.TrainingService, in Python (Debian's python3-grpcio).

  python_client.py STUB_DIR HOST:PORT OUT_DIR

STUB_DIR holds modules generated from proto/ with protoc --python_out and grpc_python_plugin.
Submits a small job (twice with one request_id), watches it to the end, checks the event
sequence, downloads the model, and checks the error codes of a bad spec and an unknown id.
Prints one line per check and `N passed, M failed`; exits 1 on any failure.
"""
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from cajal.v1 import job_spec_pb2, training_service_pb2 as pb, training_service_pb2_grpc as rpc  # noqa: E402

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
