#!/usr/bin/python3
"""Security: bearer-token auth, TLS and mTLS, with the Python client and the real `cajal` CLI.

  security_test.py STUB_DIR BUILD_DIR WORK_DIR

WORK_DIR/pki holds a CA, a server certificate (SAN DNS:localhost, IP:127.0.0.1) and a client
certificate that the wrapper made with openssl, plus a second CA that signed nothing we trust.
"""
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools'))
from cajal.v1 import dataset_pb2 as dpb  # noqa: E402
from cajald_harness import Checks, Server, grpc, health, pb, rpc_error, wait_for, xor_spec  # noqa: E402

BUILD, WORK = sys.argv[2], sys.argv[3]
PKI = os.path.join(WORK, 'pki')
C = grpc.StatusCode
TOKEN = 'tok-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e'
t = Checks()


def pem(name):
    with open(os.path.join(PKI, name), 'rb') as f:
        return f.read()


def upload_requests(data):
    yield dpb.UploadDatasetRequest(header=dpb.UploadDatasetHeader(
        name='d.csv', size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    yield dpb.UploadDatasetRequest(chunk=data)


def cli(server, *args, env_token=None):
    env = dict(os.environ)
    env.pop('CAJAL_TOKEN', None)
    if env_token is not None:
        env['CAJAL_TOKEN'] = env_token
    return subprocess.run([os.path.join(BUILD, 'bin', 'cajal'), '--server', server, '--timeout', '20', *args],
                          capture_output=True, text=True, timeout=90, env=env)


def auth_tests():
    token_file = os.path.join(WORK, 'token')
    with open(token_file, 'w') as f:
        f.write(TOKEN + '\n')
    os.chmod(token_file, 0o600)
    server = Server(BUILD, os.path.join(WORK, 'data-auth'), os.path.join(WORK, 'cajald-auth.log'),
                    '--auth_token_file', token_file).start()
    ch = server.channel()
    stub = server.stub()
    good = (('authorization', f'Bearer {TOKEN}'),)

    # Every TrainingService method refuses a call without the token.
    some_id = '0' * 32
    calls = {
        'SubmitJob': lambda md: stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec()), metadata=md, timeout=20),
        'GetJob': lambda md: stub.GetJob(pb.GetJobRequest(id=some_id), metadata=md, timeout=20),
        'ListJobs': lambda md: stub.ListJobs(pb.ListJobsRequest(), metadata=md, timeout=20),
        'CancelJob': lambda md: stub.CancelJob(pb.CancelJobRequest(id=some_id), metadata=md, timeout=20),
        'WatchJob': lambda md: list(stub.WatchJob(pb.WatchJobRequest(id=some_id), metadata=md, timeout=20)),
        'GetJobMetrics': lambda md: stub.GetJobMetrics(pb.GetJobMetricsRequest(id=some_id), metadata=md, timeout=20),
        'DownloadModel': lambda md: list(stub.DownloadModel(pb.DownloadModelRequest(id=some_id), metadata=md,
                                                            timeout=20)),
        'DeleteJob': lambda md: stub.DeleteJob(pb.DeleteJobRequest(id=some_id), metadata=md, timeout=20),
        'UploadDataset': lambda md: stub.UploadDataset(iter(upload_requests(b'1,2,0\n')), metadata=md, timeout=20),
        'ListDatasets': lambda md: stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=md, timeout=20),
        'DeleteDataset': lambda md: stub.DeleteDataset(dpb.DeleteDatasetRequest(id=some_id), metadata=md,
                                                       timeout=20),
    }
    wrong = {
        'no token': (),
        'wrong token': (('authorization', 'Bearer tok-wrong'),),
        'token prefix': (('authorization', f'Bearer {TOKEN[:-1]}'),),
        'token with a suffix': (('authorization', f'Bearer {TOKEN}x'),),
        'token without Bearer': (('authorization', TOKEN),),
        'lower-case bearer': (('authorization', f'bearer {TOKEN}'),),
    }
    for what, md in wrong.items():
        for method, call in calls.items():
            if what != 'no token' and method not in ('SubmitJob', 'GetJob', 'WatchJob'):
                continue
            e = rpc_error(lambda: call(md))
            ok = e is not None and e.code() == C.UNAUTHENTICATED
            leak = e is not None and (TOKEN[:8] in (e.details() or '') or 'tok-wrong' in (e.details() or ''))
            t.check(f'{method}, {what}: UNAUTHENTICATED, no token in the message', ok and not leak,
                    f'got {e.code().name if e else "OK"} {e.details() if e else ""}')
    t.check('health answers SERVING without a token', health(ch) == 'SERVING')
    t.check('health of cajal.v1.TrainingService answers without a token',
            health(ch, 'cajal.v1.TrainingService') == 'SERVING')
    e = rpc_error(lambda: ch.stream_stream('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo')(
        iter([b'\x3a\x00']), timeout=10).__next__())
    t.check('reflection is off under auth', e is not None and e.code() == C.UNIMPLEMENTED, e)

    # The right token works for every method.
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2), request_id='sec-1'), metadata=good, timeout=30)
    t.check('SubmitJob with the token', len(job.id) == 32)
    events = list(stub.WatchJob(pb.WatchJobRequest(id=job.id), metadata=good, timeout=60))
    t.check('WatchJob with the token streams to SUCCEEDED',
            events and events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1:] if events else events)
    t.check('GetJob with the token', stub.GetJob(pb.GetJobRequest(id=job.id), metadata=good, timeout=20).state ==
            pb.JOB_STATE_SUCCEEDED)
    t.check('ListJobs with the token', [j.id for j in stub.ListJobs(pb.ListJobsRequest(), metadata=good,
                                                                    timeout=20).jobs] == [job.id])
    points = stub.GetJobMetrics(pb.GetJobMetricsRequest(id=job.id), metadata=good, timeout=20).points
    t.check('GetJobMetrics with the token', len([p for p in points if p.name == 'loss']) == 2, points)
    data = b''.join(c.data for c in stub.DownloadModel(pb.DownloadModelRequest(id=job.id), metadata=good, timeout=30))
    t.check('DownloadModel with the token', data[:8] == b'CAJALMDL', data[:8])
    uploaded = stub.UploadDataset(iter(upload_requests(b'1,2,0\n3,4,1\n')), metadata=good, timeout=20)
    t.check('UploadDataset with the token', len(uploaded.id) == 32, uploaded)
    listed = stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=good, timeout=20).datasets
    t.check('ListDatasets with the token', [d.id for d in listed] == [uploaded.id], listed)
    stub.DeleteDataset(dpb.DeleteDatasetRequest(id=uploaded.id), metadata=good, timeout=20)
    t.check('DeleteDataset with the token',
            not stub.ListDatasets(dpb.ListDatasetsRequest(), metadata=good, timeout=20).datasets)
    e = rpc_error(lambda: stub.CancelJob(pb.CancelJobRequest(id=job.id), metadata=good, timeout=20))
    t.check('CancelJob with the token reaches the job (FAILED_PRECONDITION: it finished)',
            e is not None and e.code() == C.FAILED_PRECONDITION, e)

    # The CLI: --token_file, $CAJAL_TOKEN, neither.
    r = cli(server.address, 'get', job.id)
    t.check('cajal get without a token: exit 1, unauthenticated', r.returncode == 1 and 'unauthenticated' in r.stderr,
            f'{r.returncode} {r.stderr!r}')
    r = cli(server.address, '--token_file', token_file, 'get', job.id)
    t.check('cajal --token_file get', r.returncode == 0 and job.id in r.stdout and 'succeeded' in r.stdout.lower(),
            f'{r.returncode} {r.stdout!r} {r.stderr!r}')
    r = cli(server.address, 'list', env_token=TOKEN)
    t.check('CAJAL_TOKEN=... cajal list', r.returncode == 0 and job.id in r.stdout, f'{r.returncode} {r.stderr!r}')
    r = cli(server.address, 'get', job.id, env_token='tok-wrong')
    t.check('CAJAL_TOKEN with a wrong token: exit 1', r.returncode == 1 and 'unauthenticated' in r.stderr,
            f'{r.returncode} {r.stderr!r}')
    spec_path = os.path.join(WORK, 'xor.yaml')
    with open(spec_path, 'w') as f:
        f.write('model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}\n'
                'data: {train: {builtin: xor}}\noptimizer: {kind: adam, learning_rate: 0.05}\n'
                'training: {epochs: 2, batch_size: 4, threads: 1}\n')
    r = cli(server.address, '--token_file', token_file, 'submit', '--spec', spec_path, '--wait')
    t.check('cajal --token_file submit --wait', r.returncode == 0, f'{r.returncode} {r.stderr!r}')

    # Global flags after the subcommand, and $CAJAL_SERVER as the default server (kubectl-style).
    bare = [os.path.join(BUILD, 'bin', 'cajal')]
    env = {k: v for k, v in os.environ.items() if k not in ('CAJAL_TOKEN', 'CAJAL_SERVER')}
    r = subprocess.run(bare + ['submit', '--server', server.address, '--token_file', token_file, '--timeout', '20',
                               '--spec', spec_path, '--wait'], capture_output=True, text=True, timeout=90, env=env)
    t.check('cajal submit --server ... --token_file ... (flags after the subcommand)', r.returncode == 0,
            f'{r.returncode} {r.stderr!r}')
    r = subprocess.run(bare + ['get', job.id, '--token_file', token_file], capture_output=True, text=True,
                       timeout=90, env=dict(env, CAJAL_SERVER=server.address))
    t.check('CAJAL_SERVER=... cajal get ID --token_file ...', r.returncode == 0 and job.id in r.stdout,
            f'{r.returncode} {r.stdout!r} {r.stderr!r}')
    r = subprocess.run(bare + ['get', job.id, '--token_file', token_file, '--timeout', '5'], capture_output=True,
                       text=True, timeout=90, env=dict(env, CAJAL_SERVER='127.0.0.1:1'))
    t.check('CAJAL_SERVER names the server that is called (a closed port: exit 1, unavailable)',
            r.returncode == 1 and ('127.0.0.1:1' in r.stderr or 'unavailable' in r.stderr.lower()),
            f'{r.returncode} {r.stdout!r} {r.stderr!r}')

    server.signal(15)
    t.check('cajald under auth exits 0 on SIGTERM', server.wait(30) == 0)
    log = server.log()
    t.check('the token never appears in cajald\'s output', TOKEN not in log and TOKEN[:12] not in log,
            [line for line in log.splitlines() if TOKEN[:12] in line][:3])

    # Bad token files are refused at start, naming the file but not the content.
    empty = os.path.join(WORK, 'empty-token')
    open(empty, 'w').close()
    r = subprocess.run([os.path.join(BUILD, 'bin', 'cajald'), '--port', '0', '--metrics_port', '0',
                        '--data_dir', os.path.join(WORK, 'data-x'), '--auth_token_file', empty],
                       capture_output=True, text=True, timeout=60)
    t.check('cajald with an empty token file: exit 2 naming it', r.returncode == 2 and 'empty-token' in r.stderr
            and 'is empty' in r.stderr, f'{r.returncode} {r.stderr!r}')


def tls_tests():
    ca, other_ca = pem('ca.pem'), pem('other-ca.pem')
    client_cert, client_key = pem('client.pem'), pem('client.key')
    # --- TLS: the server proves itself; clients need no certificate.
    server = Server(BUILD, os.path.join(WORK, 'data-tls'), os.path.join(WORK, 'cajald-tls.log'),
                    '--tls_cert', os.path.join(PKI, 'server.pem'), '--tls_key', os.path.join(PKI, 'server.key')).start()
    tls = grpc.ssl_channel_credentials(root_certificates=ca)
    stub = server.stub(credentials=tls)
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2)), timeout=30)
    t.check('TLS: a client that trusts the CA submits a job', len(job.id) == 32)
    t.check('TLS: and sees it finish', wait_for(
        lambda: stub.GetJob(pb.GetJobRequest(id=job.id), timeout=10).state == pb.JOB_STATE_SUCCEEDED, 60))
    t.check('TLS: via the name localhost too', wait_for(lambda: server.stub(
        credentials=tls, target=f'localhost:{server.port}').GetJob(pb.GetJobRequest(id=job.id), timeout=10), 20))
    e = rpc_error(lambda: server.stub().GetJob(pb.GetJobRequest(id=job.id), timeout=5))
    t.check('TLS: a plaintext client fails (UNAVAILABLE)', e is not None and e.code() == C.UNAVAILABLE, e)
    e = rpc_error(lambda: server.stub(credentials=grpc.ssl_channel_credentials(root_certificates=other_ca)).GetJob(
        pb.GetJobRequest(id=job.id), timeout=5))
    t.check('TLS: a client trusting another CA fails (UNAVAILABLE)', e is not None and e.code() == C.UNAVAILABLE, e)
    r = cli(server.address, '--tls_ca', os.path.join(PKI, 'ca.pem'), 'get', job.id)
    t.check('TLS: cajal --tls_ca get', r.returncode == 0 and job.id in r.stdout, f'{r.returncode} {r.stderr!r}')
    r = cli(server.address, 'get', job.id)
    t.check('TLS: plaintext cajal get fails with exit 1', r.returncode == 1 and 'unavailable' in r.stderr,
            f'{r.returncode} {r.stderr!r}')
    r = cli(server.address, '--tls_ca', os.path.join(PKI, 'other-ca.pem'), 'get', job.id)
    t.check('TLS: cajal with the wrong CA fails with exit 1', r.returncode == 1, f'{r.returncode} {r.stderr!r}')
    server.signal(15)
    t.check('TLS: cajald exits 0 on SIGTERM', server.wait(30) == 0)

    # --- mTLS: clients must present a certificate signed by --tls_client_ca.
    server = Server(BUILD, os.path.join(WORK, 'data-mtls'), os.path.join(WORK, 'cajald-mtls.log'),
                    '--tls_cert', os.path.join(PKI, 'server.pem'), '--tls_key', os.path.join(PKI, 'server.key'),
                    '--tls_client_ca', os.path.join(PKI, 'ca.pem')).start()
    mtls = grpc.ssl_channel_credentials(root_certificates=ca, private_key=client_key, certificate_chain=client_cert)
    stub = server.stub(credentials=mtls)
    job = stub.SubmitJob(pb.SubmitJobRequest(spec=xor_spec(epochs=2)), timeout=30)
    t.check('mTLS: a client with a certificate submits a job', len(job.id) == 32)
    e = rpc_error(lambda: server.stub(credentials=tls).GetJob(pb.GetJobRequest(id=job.id), timeout=5))
    t.check('mTLS: a client without a certificate is refused (UNAVAILABLE)',
            e is not None and e.code() == C.UNAVAILABLE, e)
    rogue = grpc.ssl_channel_credentials(root_certificates=ca, private_key=pem('rogue.key'),
                                         certificate_chain=pem('rogue.pem'))
    e = rpc_error(lambda: server.stub(credentials=rogue).GetJob(pb.GetJobRequest(id=job.id), timeout=5))
    t.check('mTLS: a certificate from another CA is refused (UNAVAILABLE)',
            e is not None and e.code() == C.UNAVAILABLE, e)
    e = rpc_error(lambda: server.stub().GetJob(pb.GetJobRequest(id=job.id), timeout=5))
    t.check('mTLS: a plaintext client fails', e is not None and e.code() == C.UNAVAILABLE, e)
    r = cli(server.address, '--tls_ca', os.path.join(PKI, 'ca.pem'), '--tls_cert', os.path.join(PKI, 'client.pem'),
            '--tls_key', os.path.join(PKI, 'client.key'), 'watch', job.id)
    t.check('mTLS: cajal --tls_cert/--tls_key watch to the end', r.returncode == 0, f'{r.returncode} {r.stderr!r}')
    r = cli(server.address, '--tls_ca', os.path.join(PKI, 'ca.pem'), 'get', job.id)
    t.check('mTLS: cajal without a certificate fails with exit 1', r.returncode == 1, f'{r.returncode} {r.stderr!r}')
    t.check('mTLS: health needs the certificate too (same port), and answers with it',
            health(server.channel(credentials=mtls)) == 'SERVING')
    server.signal(15)
    t.check('mTLS: cajald exits 0 on SIGTERM', server.wait(30) == 0)

    # Flags that do not go together are refused at start.
    r = subprocess.run([os.path.join(BUILD, 'bin', 'cajald'), '--port', '0', '--metrics_port', '0', '--data_dir',
                        os.path.join(WORK, 'data-x'), '--tls_cert', os.path.join(PKI, 'server.pem')],
                       capture_output=True, text=True, timeout=60)
    t.check('cajald --tls_cert without --tls_key: exit 2', r.returncode == 2 and 'tls_key' in r.stderr,
            f'{r.returncode} {r.stderr!r}')


def main():
    auth_tests()
    tls_tests()
    return t.summary()


if __name__ == '__main__':
    sys.exit(main())
